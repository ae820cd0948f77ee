#!/usr/bin/env bash
# Builds and runs main.cpp against the wavspa installed under PREFIX ($1), once with
# pkg-config and once with CMake's find_package; CI runs this after `make install`.
#   bash examples/out_of_tree/build.sh /path/to/prefix
set -euo pipefail
prefix=$(cd "${1:?usage: build.sh PREFIX}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
echo "pkg-config: $(pkg-config --cflags --libs wavspa)"
make -s -C "$here" -f "$here/Makefile" out_of_tree CXX="${CXX:-g++}" >/dev/null
mv "$here/out_of_tree" "$work/out_of_tree-pkgconfig"
"$work/out_of_tree-pkgconfig"
cmake -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/cmake" -j 2 >/dev/null
"$work/cmake/out_of_tree"
echo "out_of_tree: built and ran with pkg-config and with CMake against $prefix"
