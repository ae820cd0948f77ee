#include "core/error.h"

namespace wavspa {

void throw_internal(const char* file, int line, const std::string& what) {
  throw Error(str("internal error at ", file, ":", line, ": ", what,
                  " (this is a wavspa bug; please report it)"));
}

}  // namespace wavspa
