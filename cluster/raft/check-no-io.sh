#!/usr/bin/env bash
# Proves the Raft core is sans-IO: its normal (non-dev) dependency tree holds no I/O or
# randomness crate, and its source names no file, socket, clock or ambient randomness API.
# Run from anywhere; exits non-zero with the offending lines. Called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")"

status=0
tree=$(cargo tree -p raft -e normal --prefix none --offline 2>/dev/null || cargo tree -p raft -e normal --prefix none)
banned='^(tokio|tokio-[a-z-]+|hyper|hyper-[a-z-]+|mio|socket2|libc|nix|rand|rand_[a-z]+|getrandom|async-std|smol|reqwest) '
if bad=$(printf '%s\n' "$tree" | grep -E "$banned"); then
    echo "check-no-io: I/O crates in raft's dependency tree:" >&2
    printf '%s\n' "$bad" >&2
    status=1
fi

# Library sources only (tests and examples may time and print); comments included on
# purpose, so a doc example cannot smuggle one in either.
if bad=$(grep -rnE 'std::fs|std::net|std::time::Instant|SystemTime|thread_rng|std::thread|std::env' src); then
    echo "check-no-io: I/O, clock or ambient randomness in raft's sources:" >&2
    printf '%s\n' "$bad" >&2
    status=1
fi

if [ "$status" -eq 0 ]; then
    echo "check-no-io: ok ($(printf '%s\n' "$tree" | sort -u | wc -l) crates in raft's normal dependency tree)"
fi
exit "$status"
