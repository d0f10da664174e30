#!/bin/sh
# Build the context-switch suite for aarch64 and run it under qemu-user.
# Exit 77 (skipped) when the cross compiler or qemu is not installed.
root=${1:?usage: run_aarch64.sh SOURCE_ROOT}
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || { echo "no aarch64-linux-gnu-gcc"; exit 77; }
command -v qemu-aarch64 >/dev/null 2>&1 || { echo "no qemu-aarch64"; exit 77; }
out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
aarch64-linux-gnu-gcc -O2 -static -Wall -Wextra -Werror -DNUTEST_STANDALONE \
	-I"$root/arch" -I"$root/tests" "$root/tests/test_ctx.c" \
	"$root/arch/aarch64/switch.S" -o "$out/test_ctx" || exit 1
aarch64-linux-gnu-gcc -O2 -static -Wall -Wextra -Werror -DNUTEST_STANDALONE \
	-I"$root/arch" -I"$root/tests" -I"$root/runtime/include" \
	"$root/tests/test_resumable.c" "$root/arch/aarch64/resumable.S" \
	-o "$out/test_resumable" || exit 1
qemu-aarch64 "$out/test_ctx" && qemu-aarch64 "$out/test_resumable"
