# wavspa build. `make help` lists the targets.
#
# Options (each must be 0 or 1):
#   CUDA=1     also build the CUDA backend (needs nvcc; sm_90)
#   WERROR=1   treat warnings as errors (CI does)
#   OPENMP=0   build without OpenMP (single-threaded kernels)
#   SANITIZE=1 AddressSanitizer + UndefinedBehaviorSanitizer (what `make sanitize` uses)

CUDA     ?= 0
WERROR   ?= 0
OPENMP   ?= 1
SANITIZE ?= 0
$(foreach v,CUDA WERROR OPENMP SANITIZE,$(if $(filter 0 1,$($(v))),,$(error $(v) must be 0 or 1, got '$($(v))')))

CXX       ?= g++
NVCC      ?= /usr/local/cuda/bin/nvcc
BUILD     ?= build
CXXSTD    := -std=c++20
WARN      := -Wall -Wextra -Wpedantic -Wno-unknown-pragmas
# x86-64-v3 = AVX2 + FMA. Not -march=native: on this AVX-512 machine g++ 12's AVX-512
# vectoriser miscompiled a std::vector initializer list in our tests (a wrong {2, 2, 2, 2}).
OPT       ?= -O3 -march=x86-64-v3
CPPFLAGS  := -I. -MMD -MP
ifeq ($(WERROR),1)
  WARN += -Werror
endif
CXXFLAGS  := $(CXXSTD) $(OPT) $(WARN) -g1
LDLIBS    := -lsleef -lkissfft-float -lpng -lcsv -lz -lm
ifeq ($(SANITIZE),1)
  SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined
  CXXFLAGS += -O1 -g -fno-omit-frame-pointer $(SAN)  # the later -O1 wins over -O3
  LDFLAGS  += $(SAN)
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
  LDLIBS    += -L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lcudart -lcublas -lcufft
  NVCCFLAGS := -std=c++20 -O3 -arch=sm_90 -I. -MMD -MP -DWAVSPA_CUDA --expt-relaxed-constexpr -lineinfo -Xcompiler -fopenmp,-Wall
endif

# Targets that install the packages first and then re-run make need no check here; any
# other build without OpenBLAS, SLEEF or KissFFT stops with a hint instead of a compile error.
ifeq ($(filter deps clean help test sanitize bench run,$(MAKECMDGOALS)),)
  ifneq ($(HAVE_OPENBLAS)$(HAVE_SLEEF)$(HAVE_KISSFFT)$(HAVE_PNG_CSV),1111)
    $(error OpenBLAS (OpenMP build), SLEEF, KissFFT, libpng or libcsv is missing: run `make deps` first)
  endif
endif

yesno = $(if $(filter 1,$(1)),yes,no)
$(info wavspa: OpenMP $(call yesno,$(HAVE_OPENMP)) (used: $(call yesno,$(OPENMP))), OpenBLAS $(call yesno,$(HAVE_OPENBLAS)), SLEEF $(call yesno,$(HAVE_SLEEF)), KissFFT $(call yesno,$(HAVE_KISSFFT)), doctest $(call yesno,$(HAVE_DOCTEST)), nvcc $(call yesno,$(HAVE_NVCC)) (CUDA=$(CUDA)), NCCL $(call yesno,$(HAVE_NCCL)), MPI $(call yesno,$(HAVE_MPI)))

# ---- sources ---------------------------------------------------------------------------
LIB_SRC  := $(wildcard core/*.cpp backends/*.cpp backends/cpu/*.cpp autograd/*.cpp ops/*.cpp nn/*.cpp models/*.cpp data/*.cpp train/*.cpp)
CUDA_SRC := $(if $(filter 1,$(CUDA)),$(wildcard backends/cuda/*.cu))
TEST_SRC := $(shell find tests -name "*.cpp" -not -path "tests/fixtures/*" | sort)
TOOLS    := $(patsubst tools/%.cpp,$(BUILD)/%,$(wildcard tools/*.cpp))
EXAMPLES := $(patsubst examples/%.cpp,$(BUILD)/examples/%,$(wildcard examples/*.cpp))

LIB_OBJ  := $(LIB_SRC:%.cpp=$(BUILD)/obj/%.o) $(CUDA_SRC:%.cu=$(BUILD)/obj/%.cu.o)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libwavspa.a
TESTS    := $(BUILD)/wavspa_tests

DEBIAN_PACKAGES := libopenblas-dev libopenblas-openmp-dev doctest-dev zlib1g-dev libsleef-dev \
                   nlohmann-json3-dev libcli11-dev libkissfft-dev libpng-dev libcsv-dev \
                   dataset-fashion-mnist

.PHONY: all lib test sanitize bench run deps clean help examples
.DEFAULT_GOAL := all
# Keep the tools' and examples' object files (pattern-rule intermediates) so a rebuild does
# not recompile and relink them every time.
.SECONDARY:

all: $(LIB) $(TOOLS) $(EXAMPLES)
lib: $(LIB)
examples: $(EXAMPLES)

$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

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

# The tests run the example programs and the tools, so those are built first.
test: deps
	@$(MAKE) --no-print-directory $(TESTS) $(EXAMPLES) $(TOOLS)
	WAVSPA_BUILD=$(BUILD) OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} ./$(TESTS) $(TEST_ARGS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir.
sanitize: deps
	@$(MAKE) --no-print-directory BUILD=build-sanitize SANITIZE=1 test

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench
	./$(BUILD)/bench

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

clean:
	rm -rf build build-sanitize build-cuda

help:
	@echo "make            build $(LIB), tools and examples"
	@echo "make test       install deps, build, run the doctest suite"
	@echo "make sanitize   the suite under ASan + UBSan (build-sanitize/)"
	@echo "make bench      speed: matmul GFLOP/s, add/gelu/softmax/layer_norm GB/s"
	@echo "make run        the main job: train WavSpA on a small ListOps set (a few minutes)"
	@echo "make deps       install missing Debian packages"
	@echo "make clean      remove build outputs"
	@echo "options: CUDA=0|1 WERROR=0|1 OPENMP=0|1 SANITIZE=0|1"

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(wildcard $(BUILD)/obj/tools/*.d $(BUILD)/obj/examples/*.d)
