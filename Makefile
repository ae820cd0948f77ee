# wavspa build. `make help` lists the targets.
#
# Options (each must be 0 or 1, except CUDA_ARCH):
#   CUDA=1     also build the CUDA backend (needs nvcc)
#   CUDA_ARCH  the GPU nvcc compiles for: sm_NN, sm_NNN or with an `a` (sm_90a); default sm_90
#   WERROR=1   treat warnings as errors (CI does)
#   OPENMP=0   build without OpenMP (single-threaded kernels)
#   SANITIZE=1 AddressSanitizer + UndefinedBehaviorSanitizer (what `make sanitize` uses)
#   TSAN=1     clang++-14 with ThreadSanitizer and LLVM's OpenMP (libomp, whose Archer tool tells
#              TSan about OpenMP's barriers): what `make tsan` uses (build-tsan/)
#   FUZZ=1     clang++-14 with libFuzzer, ASan and UBSan, no OpenMP: the fuzz targets of
#              fuzz/ (what `make fuzz` uses; build-fuzz/)
#
# Each option set builds in its own folder, so objects of different sets never mix:
#   build, build-cuda, build-noomp, build-sanitize, build-cuda-noomp-sanitize, ... (the parts
#   in that order), and build-cuda-sm_80 etc. for a CUDA_ARCH other than sm_90. WERROR gets no
#   folder of its own: it changes no object, only whether a warning stops the build.
#   BUILD=dir on the command line (or in the environment) wins.

CUDA      ?= 0
CUDA_ARCH ?= sm_90
WERROR    ?= 0
OPENMP    ?= 1
SANITIZE  ?= 0
FUZZ      ?= 0
TSAN      ?= 0
$(foreach v,CUDA WERROR OPENMP SANITIZE FUZZ TSAN,$(if $(filter 0 1,$($(v))),,$(error $(v) must be 0 or 1, got '$($(v))')))
ifeq ($(FUZZ),1)
  override OPENMP := 0
endif
ifeq ($(TSAN)$(SANITIZE),11)
  $(error TSAN=1 and SANITIZE=1 cannot be combined: ThreadSanitizer and AddressSanitizer exclude each other)
endif
ifeq ($(TSAN)$(CUDA),11)
  $(error TSAN=1 builds the CPU backend only; drop CUDA=1)
endif
# CUDA_ARCH: sm_, then 2 or 3 digits, then an optional a; checked in make itself, no shell.
spread_digits = $(subst 0,0 ,$(subst 1,1 ,$(subst 2,2 ,$(subst 3,3 ,$(subst 4,4 ,$(subst 5,5 ,$(subst 6,6 ,$(subst 7,7 ,$(subst 8,8 ,$(subst 9,9 ,$(1)))))))))))
arch_chars := $(call spread_digits,$(patsubst sm_%,%,$(patsubst %a,%,$(CUDA_ARCH))))
arch_ok    := $(and $(filter 1,$(words $(CUDA_ARCH))),$(filter sm_%,$(CUDA_ARCH)),$(filter 2 3,$(words $(arch_chars))),$(if $(filter-out 0 1 2 3 4 5 6 7 8 9,$(arch_chars)),,ok))
ifeq ($(arch_ok),)
  $(error CUDA_ARCH must be sm_NN or sm_NNN, optionally with a trailing a (sm_90, sm_90a, sm_100a), got '$(CUDA_ARCH)')
endif

# The build assumes x86-64: -march=x86-64-v3 below and the Debian multiarch paths
# /usr/{include,lib}/x86_64-linux-gnu of OpenBLAS, SLEEF and KissFFT. Elsewhere it stops
# here rather than with a compiler error (`make help` and `make clean` still work).
# HOST_ARCH=... on the command line tests this message on an x86-64 machine.
HOST_ARCH ?= $(shell uname -m)
ifneq ($(filter-out help clean print-%,$(or $(MAKECMDGOALS),all)),)
  ifneq ($(HOST_ARCH),x86_64)
    $(error wavspa builds only on x86_64 machines, but this one is '$(HOST_ARCH)' (uname -m; HOST_ARCH=... overrides): the Makefile compiles with -march=x86-64-v3 and takes OpenBLAS, SLEEF and KissFFT from /usr/{include,lib}/x86_64-linux-gnu)
  endif
endif

# The build folder of this option set (see above); BUILD=dir given by the user wins.
build_dir = build$(if $(filter 1,$(1)),-cuda$(if $(filter-out sm_90,$(2)),-$(2)))$(if $(filter 0,$(3)),-noomp)$(if $(filter 1,$(4)),-sanitize)
ifeq ($(origin BUILD),undefined)
  BUILD := $(if $(filter 1,$(FUZZ)),build-fuzz,$(if $(filter 1,$(TSAN)),build-tsan$(if $(filter 0,$(OPENMP)),-noomp),$(call build_dir,$(CUDA),$(CUDA_ARCH),$(OPENMP),$(SANITIZE))))
else
  BUILD_GIVEN := 1
endif
ifneq ($(words $(BUILD)),1)
  $(error BUILD must name one folder, got '$(BUILD)')
endif

CXX       ?= g++
NVCC      ?= /usr/local/cuda/bin/nvcc
CXXSTD    := -std=c++20
WARN      := -Wall -Wextra -Wpedantic -Wno-unknown-pragmas
# x86-64-v3 = AVX2 + FMA. Not -march=native: on this AVX-512 machine g++ 12's AVX-512
# vectoriser miscompiled a std::vector initializer list in our tests (a wrong {2, 2, 2, 2}).
OPT       ?= -O3 -march=x86-64-v3
CPPFLAGS  := -I. -MMD -MP
ifeq ($(WERROR),1)
  WARN += -Werror
endif
# -fPIC: the same objects make libwavspa.a and libwavspa.so (`make install`).
CXXFLAGS  := $(CXXSTD) $(OPT) $(WARN) -g1 -fPIC
LDLIBS    := -lsleef -lkissfft-float -lpng -lcsv -lz -lm
ifeq ($(SANITIZE),1)
  SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined
  CXXFLAGS += -O1 -fno-omit-frame-pointer $(SAN)  # the later -O1 wins over -O3; -g1 gives reports their lines
  LDFLAGS  += $(SAN)
endif
FUZZ_CXX     ?= clang++-14
FUZZ_SECONDS ?= 60
ifeq ($(TSAN),1)
  CXX      := $(FUZZ_CXX)
  CXXFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=thread -Wno-gnu-zero-variadic-macro-arguments \
              -Wno-c99-extensions -Wno-pass-failed
  LDFLAGS  += -fsanitize=thread
endif
ifeq ($(FUZZ),1)
  CXX      := $(FUZZ_CXX)
  SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined
  # The library and the targets are instrumented for coverage; only the targets link libFuzzer.
  CXXFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(SAN) -Wno-gnu-zero-variadic-macro-arguments \
              -Wno-c99-extensions -Wno-pass-failed
  LDFLAGS  += -fsanitize=fuzzer $(SAN)
endif

# ---- what is installed -----------------------------------------------------------------
BLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB := /usr/lib/x86_64-linux-gnu/openblas-openmp
HAVE_OPENBLAS := $(shell test -f $(BLAS_INC)/cblas.h && test -f $(BLAS_LIB)/libopenblas.so && echo 1)
HAVE_OPENMP   := $(shell echo 'int main(){}' | $(CXX) -fopenmp -x c++ - -o /dev/null 2>/dev/null && echo 1)
HAVE_NVCC     := $(shell test -x $(NVCC) && echo 1)
HAVE_NCCL     := $(shell test -f /usr/local/cuda/include/nccl.h -o -f /usr/include/nccl.h && echo 1)
HAVE_MPI      := $(shell command -v mpicxx >/dev/null 2>&1 && echo 1)
HAVE_DOCTEST  := $(shell test -f /usr/include/doctest/doctest.h && echo 1)
HAVE_SLEEF    := $(shell test -f /usr/include/x86_64-linux-gnu/sleef.h && echo 1)
# Debian builds KissFFT's C library in float only; float64 FFTs use its kissfft.hh template.
HAVE_KISSFFT  := $(shell test -f /usr/include/kissfft/kiss_fftr.h && test -f /usr/include/kissfft/kissfft.hh && test -f /usr/lib/x86_64-linux-gnu/libkissfft-float.so && echo 1)
# libpng writes and reads Pathfinder images; libcsv parses the CSV/TSV files of the text tasks.
HAVE_PNG_CSV  := $(shell test -f /usr/include/png.h && test -f /usr/include/csv.h && echo 1)

ifeq ($(HAVE_OPENBLAS),1)
  CPPFLAGS += -I$(BLAS_INC)
  LDLIBS   += -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas
endif
ifeq ($(OPENMP)$(HAVE_OPENMP),11)
  CXXFLAGS += -fopenmp
  LDFLAGS  += -fopenmp
else
  CXXFLAGS += -fopenmp-simd
  CPPFLAGS += -I$(CURDIR)/backends/cpu/no_openmp
endif
ifeq ($(CUDA),1)
  ifneq ($(HAVE_NVCC),1)
    $(error CUDA=1 but nvcc was not found at $(NVCC))
  endif
  CPPFLAGS  += -DWAVSPA_CUDA -I/usr/local/cuda/include
  LDLIBS    += -L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lcudart -lcublas -lcublasLt -lcufft
  NVCCFLAGS := -std=c++20 -O3 -arch=$(CUDA_ARCH) -I. -MMD -MP -DWAVSPA_CUDA --expt-relaxed-constexpr -lineinfo -Xcompiler -fopenmp,-Wall,-fPIC
endif

# Targets that install the packages first and then re-run make need no check here; any
# other build without OpenBLAS, SLEEF or KissFFT stops with a hint instead of a compile error.
ifeq ($(filter deps clean help test sanitize tsan bench soak run fuzz print-%,$(MAKECMDGOALS)),)
  ifneq ($(HAVE_OPENBLAS)$(HAVE_SLEEF)$(HAVE_KISSFFT)$(HAVE_PNG_CSV),1111)
    $(error OpenBLAS (OpenMP build), SLEEF, KissFFT, libpng or libcsv is missing: run `make deps` first)
  endif
endif

comma := ,
yesno = $(if $(filter 1,$(1)),yes,no)
# (Not for goals that build nothing here: `make sanitize`'s inner make prints its own line.)
ifneq ($(filter-out sanitize tsan fuzz deps clean help print-%,$(or $(MAKECMDGOALS),all)),)
$(info wavspa: building in $(BUILD)/; OpenMP $(call yesno,$(HAVE_OPENMP)) (used: $(call yesno,$(OPENMP))), OpenBLAS $(call yesno,$(HAVE_OPENBLAS)), SLEEF $(call yesno,$(HAVE_SLEEF)), KissFFT $(call yesno,$(HAVE_KISSFFT)), doctest $(call yesno,$(HAVE_DOCTEST)), nvcc $(call yesno,$(HAVE_NVCC)) (CUDA=$(CUDA)$(if $(filter 1,$(CUDA)),$(comma) $(CUDA_ARCH))), NCCL $(call yesno,$(HAVE_NCCL)), MPI $(call yesno,$(HAVE_MPI)))
endif

# ---- sources ---------------------------------------------------------------------------
LIB_SRC  := $(wildcard core/*.cpp backends/*.cpp backends/cpu/*.cpp autograd/*.cpp ops/*.cpp nn/*.cpp models/*.cpp data/*.cpp train/*.cpp)
CUDA_SRC := $(if $(filter 1,$(CUDA)),$(wildcard backends/cuda/*.cu))
TEST_SRC := $(shell find tests -name "*.cpp" -not -path "tests/fixtures/*" | sort)
TOOLS    := $(patsubst tools/%.cpp,$(BUILD)/%,$(wildcard tools/*.cpp))
EXAMPLES := $(patsubst examples/%.cpp,$(BUILD)/examples/%,$(wildcard examples/*.cpp))
FUZZERS  := $(patsubst fuzz/%.cpp,$(BUILD)/fuzz/%,$(wildcard fuzz/*.cpp))

# The headers of the public API (what `make install` copies); each opens with a usage example
# that the test program compiles and runs (tests/header_examples.py, below).
PUBLIC_HEADERS := wavspa.h backends/backend.h $(wildcard core/*.h autograd/*.h ops/*.h nn/*.h models/*.h data/*.h train/*.h)
HEADER_EXAMPLES_CPP := $(BUILD)/gen/header_examples.cpp
HEADER_EXAMPLES_OBJ := $(BUILD)/obj/gen/header_examples.o

LIB_OBJ  := $(LIB_SRC:%.cpp=$(BUILD)/obj/%.o) $(CUDA_SRC:%.cu=$(BUILD)/obj/%.cu.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/obj/%.o) $(HEADER_EXAMPLES_OBJ)
LIB      := $(BUILD)/libwavspa.a
TESTS    := $(BUILD)/wavspa_tests
# A smaller test program for .ci/run's OpenMP-free build (OPENMP=0): doctest's main and the
# files of the cases whose kernels have parallel loops (the op table's gradient checks,
# attention, GEMM, reductions, vectorised float32 kernels, FFT, wavelets) and of the short
# training run; CI runs those cases single-threaded without compiling the whole suite again.
OMP_TEST_SRC := tests/main.cpp $(sort $(wildcard tests/ops/op_table*.cpp)) tests/ops/test_op_table.cpp \
                tests/ops/test_attention.cpp \
                tests/ops/test_ops_values.cpp tests/ops/test_fft.cpp tests/ops/test_wavelet.cpp tests/train/test_train.cpp
OMP_TESTS    := $(BUILD)/wavspa_omp_tests

DEBIAN_PACKAGES := libopenblas-dev libopenblas-openmp-dev doctest-dev zlib1g-dev libsleef-dev \
                   nlohmann-json3-dev libcli11-dev libkissfft-dev libpng-dev libcsv-dev \
                   dataset-fashion-mnist cmake pkgconf python3
PYTHON          ?= python3

.PHONY: all lib test sanitize tsan tsan-run bench soak run deps clean help examples fuzz fuzz-run install
.DEFAULT_GOAL := all
# Keep the tools' and examples' object files (pattern-rule intermediates) so a rebuild does
# not recompile and relink them every time. Only those: a bare .SECONDARY would also let a
# library archive newer than a newly added source skip compiling it.
.SECONDARY: $(TOOLS:$(BUILD)/%=$(BUILD)/obj/tools/%.o) $(EXAMPLES:$(BUILD)/examples/%=$(BUILD)/obj/examples/%.o)

all: $(LIB) $(TOOLS) $(EXAMPLES)
lib: $(LIB)
examples: $(EXAMPLES)

$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

# The AVX-512 path of the float32 math (backends/cpu/isa.h chooses it at run time): this
# file alone is compiled with AVX-512 enabled.
$(BUILD)/obj/backends/cpu/vmath_avx512.o: CXXFLAGS += -mavx512f -mavx512dq -mavx512bw -mavx512vl

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# Every public header's opening example as a function of one generated file, with #line
# directives, so that an example that no longer compiles stops the build naming its header's
# line; tests/test_header_examples.cpp checks the registry the file ends with and runs the
# examples. Regenerated when the script or any public header changes (a new header too).
$(HEADER_EXAMPLES_CPP): tests/header_examples.py $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(PYTHON) tests/header_examples.py $@ $(PUBLIC_HEADERS)

$(HEADER_EXAMPLES_OBJ): $(HEADER_EXAMPLES_CPP)
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/%: $(BUILD)/obj/tools/%.o $(LIB)
	$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(TESTS): $(TEST_OBJ) $(LIB)
	$(CXX) $(LDFLAGS) $(TEST_OBJ) $(LIB) $(LDLIBS) -o $@

$(OMP_TESTS): $(OMP_TEST_SRC:%.cpp=$(BUILD)/obj/%.o) $(LIB)
	$(CXX) $(LDFLAGS) $(filter %.o,$^) $(LIB) $(LDLIBS) -o $@

$(BUILD)/fuzz/%: $(BUILD)/obj/fuzz/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# ---- install ---------------------------------------------------------------------------
# `make install PREFIX=dir` (default /usr/local; DESTDIR for staging): the headers of the
# public API under include/wavspa/ (the closure of wavspa.h and the rest of its folders),
# libwavspa.a and libwavspa.so in lib/, the tools as bin/wavspa-train, wavspa-gen-data and
# wavspa-inspect-checkpoint, lib/pkgconfig/wavspa.pc and lib/cmake/wavspa/ (find_package).
# examples/out_of_tree/ builds against the result both ways; CI runs it.
VERSION        := 0.1.0
PREFIX         ?= /usr/local
SHLIB          := $(BUILD)/libwavspa.so
INSTALL_TOOLS  := train gen-data inspect_checkpoint

$(SHLIB): $(LIB_OBJ)
	$(CXX) -shared $(LDFLAGS) -Wl,-soname,libwavspa.so $^ $(LDLIBS) -o $@

install: $(LIB) $(SHLIB) $(INSTALL_TOOLS:%=$(BUILD)/%)
	@test -n "$(PREFIX)" || { echo "install: PREFIX is empty"; exit 1; }
	@dest='$(DESTDIR)$(abspath $(PREFIX))'; \
	for h in $(PUBLIC_HEADERS); do install -D -m 644 $$h "$$dest/include/wavspa/$$h" || exit 1; done; \
	install -d "$$dest/lib/pkgconfig" "$$dest/lib/cmake/wavspa" "$$dest/bin" && \
	install -m 644 $(LIB) "$$dest/lib/" && install -m 755 $(SHLIB) "$$dest/lib/" && \
	for t in $(INSTALL_TOOLS); do install -m 755 $(BUILD)/$$t "$$dest/bin/wavspa-$$(echo $$t | tr _ -)" || exit 1; done; \
	subst() { sed -e 's|@PREFIX@|$(abspath $(PREFIX))|g' -e 's|@VERSION@|$(VERSION)|g' \
	  -e 's|@VERSION_MAJOR@|$(word 1,$(subst ., ,$(VERSION)))|g' -e 's|@PRIVATE_LIBS@|$(strip $(LDFLAGS) $(LDLIBS))|g' "$$1"; }; \
	subst packaging/wavspa.pc.in > "$$dest/lib/pkgconfig/wavspa.pc" && \
	subst packaging/wavspaConfig.cmake.in > "$$dest/lib/cmake/wavspa/wavspaConfig.cmake" && \
	subst packaging/wavspaConfigVersion.cmake.in > "$$dest/lib/cmake/wavspa/wavspaConfigVersion.cmake" && \
	echo "wavspa $(VERSION) installed in $$dest; compile and link with: $$(PKG_CONFIG_PATH=$$dest/lib/pkgconfig pkg-config --cflags --libs wavspa)"

# The tests run the example programs and the tools, so those are built first.
test: deps
	@$(MAKE) --no-print-directory $(TESTS) $(EXAMPLES) $(TOOLS)
	WAVSPA_BUILD=$(BUILD) OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} ./$(TESTS) $(TEST_ARGS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build folder:
# the option set's (build-sanitize, build-cuda-sanitize, ...), or BUILD=dir's dir-sanitize.
sanitize: deps
	@$(MAKE) --no-print-directory SANITIZE=1 $(if $(BUILD_GIVEN),BUILD=$(BUILD:%-sanitize=%)-sanitize) test

# The kernel table, then issue 19's CPU step table (bench/cpu_step.sh: wavspa beside PyTorch
# on the same two pinned cores, when a Python with torch is installed, and the step under load).
bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench $(BUILD)/bench_step
	./$(BUILD)/bench
	BUILD=$(BUILD) bash bench/cpu_step.sh

# Long-run memory hygiene: 10,000 training steps of a small WavSpA with tools/train; the
# process's and the allocators' memory must stay flat after warm-up (bench/soak.sh).
SOAK_STEPS ?= 10000
soak: deps
	@$(MAKE) --no-print-directory $(BUILD)/train $(BUILD)/gen-data
	BUILD=$(BUILD) bash bench/soak.sh --steps $(SOAK_STEPS)

# The tests that run threads under ThreadSanitizer, in build-tsan/ (clang-14): the batch
# loaders' worker threads (BatchLoader, DataLoader), the trainers (loader, signals, parallel
# kernels), the thread pool (core/parallel.h) and the kernels whose loops run on it. libomp's Archer tool (OMP_TOOL_LIBRARIES) tells TSan
# about OpenMP's barriers and tasks; OpenBLAS (its own libgomp threads, not instrumented)
# runs single-threaded there. A report fails the run (halt_on_error). TSAN_TESTS overrides
# the subset.
TSAN_TESTS ?= parallel_for: *,loader: *,dataloader: *,trainer: *,NoGradGuard*,train: a 20-step run*,train: a SIGINT while*,train: a run interrupted*,attention: float32 agrees*,fft: float32*,matmul equals*,reductions match*,float32 vectorised*,wavelet: float32*,op table: every sample*
ARCHER := /usr/lib/llvm-14/lib/libarcher.so
tsan: DEBIAN_PACKAGES += clang-14 libclang-rt-14-dev libomp-14-dev
tsan: deps
	@$(MAKE) --no-print-directory TSAN=1 tsan-run
tsan-run: $(TESTS) $(EXAMPLES) $(TOOLS)
	WAVSPA_BUILD=$(BUILD) OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=1 OMP_TOOL_LIBRARIES=$(ARCHER) \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1 $${TSAN_OPTIONS:-}" ./$(TESTS) -tc="$(TSAN_TESTS)" $(TEST_ARGS)

# Every parser under libFuzzer for FUZZ_SECONDS each (default 60), in build-fuzz/: seed
# corpora from the test fixtures (fuzz/seeds.sh), executions and findings per target in a
# table at the end; a crash, sanitizer report, leak or timeout stops with the reproducer
# saved as build-fuzz/findings/<target>/crash-*. Needs clang-14 and libclang-rt-14-dev.
fuzz: DEBIAN_PACKAGES += clang-14 libclang-rt-14-dev
fuzz: deps
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-run
fuzz-run: $(FUZZERS)
	@bash fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZERS)

# The main job: a small ListOps set (depth <= 5, 10..100 tokens), a small WavSpA (ada) model
# trained on the CPU for a few minutes, test accuracy beside the majority class at the end.
# A previous run's folder is kept as runs/make-run.prev.
RUN_DATA := runs/data/listops-small
RUN_DIR  := runs/make-run
run: deps
	@$(MAKE) --no-print-directory $(BUILD)/train $(BUILD)/gen-data
	@test -f $(RUN_DATA)/basic_test.tsv || ./$(BUILD)/gen-data --task listops --out $(RUN_DATA) \
	  --train 20000 --val 1000 --test 1000 --min-length 10 --max-length 100 --max-depth 5 --seed 1
	@if [ -d $(RUN_DIR) ]; then rm -rf $(RUN_DIR).prev && mv $(RUN_DIR) $(RUN_DIR).prev; fi
	./$(BUILD)/train --config configs/run_listops_small.json --data $(RUN_DATA) --out $(RUN_DIR)

deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "wavspa: installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Every folder an option set builds in by default (a BUILD=dir of your own is left alone).
ALL_BUILDS := $(foreach c,0 1,$(foreach o,1 0,$(foreach s,0 1,$(call build_dir,$(c),sm_90,$(o),$(s))))) build-fuzz build-tsan build-tsan-noomp
clean:
	rm -rf $(ALL_BUILDS) $(patsubst %/,%,$(wildcard build-cuda-sm_*/))

# `make print-BUILD` (any variable): what the Makefile computed, for scripts and checks.
print-%:
	@echo '$*=$($*)'

help:
	@echo "make            build $(LIB), tools and examples"
	@echo "make test       install deps, build, run the doctest suite"
	@echo "make sanitize   the suite under ASan + UBSan in build-sanitize/ (CUDA=1: build-cuda-sanitize/, ...)"
	@echo "make bench      speed: matmul GFLOP/s, add/gelu/softmax/layer_norm GB/s"
	@echo "make soak       10,000 training steps (SOAK_STEPS): memory must stay flat after warm-up"
	@echo "make tsan       the threaded tests under ThreadSanitizer in build-tsan/ (clang-14, libomp + Archer)"
	@echo "make fuzz       every parser under libFuzzer, FUZZ_SECONDS (60) each, in build-fuzz/"
	@echo "make run        the main job: train WavSpA on a small ListOps set (a few minutes)"
	@echo "make install    PREFIX=dir (default /usr/local): headers, libwavspa.a/.so, tools, pkg-config and CMake files"
	@echo "make deps       install missing Debian packages"
	@echo "make clean      remove every build folder below (not a BUILD=dir of your own)"
	@echo "make print-VAR  print a variable the Makefile computed, e.g. print-BUILD"
	@echo "options: CUDA=0|1 CUDA_ARCH=sm_90|sm_NN|sm_NNa WERROR=0|1 OPENMP=0|1 SANITIZE=0|1 TSAN=0|1"
	@echo "folders: each option set builds in its own: build, build-cuda, build-noomp, build-sanitize,"
	@echo "         and combinations in that order (build-cuda-noomp-sanitize); CUDA_ARCH other than"
	@echo "         sm_90 adds itself (build-cuda-sm_80); WERROR changes no object, so no folder;"
	@echo "         BUILD=dir overrides. These options: $(BUILD)/"

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(wildcard $(BUILD)/obj/tools/*.d $(BUILD)/obj/examples/*.d $(BUILD)/obj/fuzz/*.d)
