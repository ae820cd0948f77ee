#!/usr/bin/env bash
# CUDA checks on the GPU machine (the `device` tool), in two halves, because that machine has
# CUDA but none of our Debian libraries (OpenBLAS, SLEEF, KissFFT, libpng, libcsv) and no
# package registry:
#
#   bash bench/gpu.sh pack        # here: make CUDA=1 the test binary, bundle it with its
#                                 #       shared libraries into .gpu/bundle.tgz (git-ignored)
#   bash bench/gpu.sh run         # there (carry .gpu): unpack, run every CUDA test, then
#                                 #       compute-sanitizer memcheck and racecheck on them
#
# Results land in $OUT (or .gpu/out) as cuda_tests.log, memcheck.log, racecheck.log; a
# short table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  pack)
    make -j2 CUDA=1 BUILD=build-cuda build-cuda/wavspa_tests || exit 1
    rm -rf .gpu && mkdir -p .gpu/stage/lib
    strip -o .gpu/stage/wavspa_tests build-cuda/wavspa_tests
    # Everything the binary links that is not CUDA's or the C/C++ runtime's.
    ldd build-cuda/wavspa_tests | awk '/=>/ {print $3}' |
      grep -E 'sleef|kissfft|png|csv|openblas|gomp|gfortran|quadmath' |
      xargs -I{} cp -L {} .gpu/stage/lib/
    tar czf .gpu/bundle.tgz -C .gpu/stage wavspa_tests lib && rm -rf .gpu/stage
    ls -la .gpu/bundle.tgz
    ;;
  run)
    out=${OUT:-.gpu/out}
    mkdir -p "$out" .gpu/x
    tar xzf .gpu/bundle.tgz -C .gpu/x || exit 1
    export LD_LIBRARY_PATH=$PWD/.gpu/x/lib:/usr/local/cuda/lib64
    bin=.gpu/x/wavspa_tests
    card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)
    $bin -tc='cuda*' >"$out/cuda_tests.log" 2>&1
    tests=$(grep -E '^\[doctest\] test cases' "$out/cuda_tests.log")
    # The 64-bit-index case allocates ~9 GB and runs too long under the sanitizer.
    compute-sanitizer --tool memcheck --error-exitcode 9 $bin -tc='cuda*' -tce='*2^31*' >"$out/memcheck.log" 2>&1
    mem=$(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)
    compute-sanitizer --tool racecheck --error-exitcode 9 $bin -tc='cuda*' -tce='*2^31*' >"$out/racecheck.log" 2>&1
    race=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/racecheck.log" | tail -1)
    grep -E 'ERROR|FAILED' "$out/cuda_tests.log" | head -20
    echo "| card | $card |"
    echo "| CUDA tests | $tests |"
    echo "| memcheck | $mem |"
    echo "| racecheck | $race |"
    ;;
  *) echo "usage: bash bench/gpu.sh pack|run"; exit 2 ;;
esac
