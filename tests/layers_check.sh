#!/usr/bin/env bash
# The include direction of cmake/Layers.cmake, checked: a layer's sources are
# compiled with include roots that resolve its own headers and those of the
# layers below it, never those of a layer above. Each check compiles one
# #include with the include flags the build really gives a source of that
# layer (from compile_commands.json), from an empty directory. Blind means
# the compiler could not find that header; any other error fails the check.
# Usage: tests/layers_check.sh BUILD_DIR
set -uo pipefail
build=$(cd "${1:?usage: layers_check.sh BUILD_DIR}" && pwd)
db=$build/compile_commands.json
[[ -s $db ]] || { echo "FAIL: $db missing (configure the build first)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
flags() {  # flags SOURCE -> the compiler and its -I/-isystem/-std flags for that source
  python3 - "$db" "$1" <<'PY'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith("/" + sys.argv[2]):
        args = shlex.split(e["command"])
        out, i = [args[0]], 1
        while i < len(args):
            a = args[i]
            if a in ("-I", "-isystem"):
                out += [a, args[i + 1]]; i += 2; continue
            if a.startswith("-I") or a.startswith("-std=") or a.startswith("-D"):
                out.append(a)
            elif a == "-isystem":
                pass
            i += 1
        print("\n".join(out))
        sys.exit(0)
sys.exit(1)
PY
}
expect() {  # expect sees|blind SOURCE HEADER
  local want=$1 source=$2 header=$3 got
  local -a cmd
  if ! mapfile -t cmd < <(flags "$source") || [[ ${#cmd[@]} -eq 0 ]]; then
    echo "FAIL: $source is not in $db"
    failed=1
    return
  fi
  local err=$tmp/err
  if (cd "$tmp" && printf '#include "%s"\n' "$header" | "${cmd[@]}" -fsyntax-only -x c++ - > /dev/null 2> "$err"); then
    got=sees
  elif grep -q "^<stdin>:1:[0-9]*: fatal error: $header: No such file or directory" "$err"; then
    got=blind  # the header itself is out of reach, not something it includes
  else
    echo "FAIL: $source including $header fails for another reason:"
    sed 's/^/    /' "$err" | head -n 5
    failed=1
    return
  fi
  if [[ $got == "$want" ]]; then
    echo "ok: $source $want $header"
  else
    echo "FAIL: $source should be $want to $header, is $got"
    failed=1
  fi
}
expect sees protocol/postgres.cc protocol/postgres.h
expect blind protocol/postgres.cc tls/context.h
expect blind protocol/postgres.cc proxy/common/config.h
expect sees tls/context.cc tls/context.h
expect blind tls/context.cc protocol/postgres.h
expect blind tls/context.cc proxy/common/config.h
expect sees proxy/common/config.cc proxy/common/config.h
expect blind proxy/common/config.cc proxy/engine/engine.h
expect sees proxy/engine/pg_engine.cc proxy/engine/engine.h
expect blind proxy/engine/pg_engine.cc proxy/datapath/session.h
expect blind proxy/engine/pg_engine.cc proxy/ops/runtime.h
expect sees proxy/datapath/session.cc proxy/datapath/session.h
expect blind proxy/datapath/session.cc proxy/commands/cli.h
exit $failed
