// Command-line parsing shared by the tools: CLI11's parse with the exit statuses the README
// promises (0 after --help; 1 and one "error: ..." line on a bad command line, where CLI11's
// own handling exits 105, 106, 114, ... with two lines).
//
//   CLI::App app{"..."};
//   ... add options ...
//   if (const int rc = wavspa::tools::parse(app, argc, argv); rc >= 0) return rc;
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

namespace wavspa::tools {

// A validator for integer options: at least `min`, with a short message (CLI11's own
// PositiveNumber prints its range up to 1.8e308 in 309 digits).
inline CLI::Validator at_least(long long min) {
  return CLI::Validator(
      [min](std::string& text) -> std::string {
        long long v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "expected an integer, got '" + text + "'";
        return v < min ? "must be at least " + std::to_string(min) + ", got " + text : std::string();
      },
      ">= " + std::to_string(min));
}

// -1: parsed, go on. Otherwise the status to exit with (help or the error already printed).
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::Success& e) {  // --help and its kind
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (see --help)\n";  // one line, as every other error of the tools
    return 1;
  }
}

}  // namespace wavspa::tools
