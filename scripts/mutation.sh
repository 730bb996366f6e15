#!/usr/bin/env bash
# Mutation testing (mutmut) of the critical modules, each against its own tests only.
# Usage: scripts/mutation.sh [MODULE ...]   every listed module (default: all of them), e.g. tcp_proxy/codec.py
#        scripts/mutation.sh --sample       a small fixed sample of mutants; exits 1 if one survives
#        scripts/mutation.sh --list         the modules and the test files each is run against
#        scripts/mutation.sh --help         this text
# A module's tests are tests/<area>/test_<name>.py and tests/<area>/test_<name>_*.py, where <area> is its
# folder without serve_app/ (serve_app/storage/throttle.py -> tests/storage/test_throttle*.py).
# Each module runs in its own copy under build/mutation/<module>/ (mutmut's files included: `mutmut show NAME`
# there prints a mutant; MUTATION_WORKDIR moves it). MUTATION_JOBS sets the parallel test runs (default: the CPU count).
# Prints "<module>: killed K/T (P %), survived S" per module and lists the survivors; docs/TESTING.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

modules=(
    tcp_proxy/codec.py tcp_proxy/admission.py tcp_proxy/deadlines.py tcp_proxy/sessions.py tcp_proxy/proxy_protocol.py
    serve_app/storage/passwords.py serve_app/storage/throttle.py serve_app/storage/sessions.py
    serve_app/export/points.py serve_app/frames/sampling.py
)
# The sample: "MODULE=GLOB ..." with mutmut's mutant names (package.module.x_function__mutmut_N, methods
# xǁClassǁmethod__mutmut_N): the PROXY v2 parser and the read deadlines, whose every mutant is killed.
sample=(
    "tcp_proxy/proxy_protocol.py=tcp_proxy.proxy_protocol.x__read_v2__mutmut_*"
    "tcp_proxy/deadlines.py=tcp_proxy.deadlines.xǁReadDeadlinesǁtimeout__mutmut_*"
)

mutmut=$root/.venv/bin/mutmut
if [ ! -x "$mutmut" ]; then
    scripts/setup_venv.sh test >&2
fi

tests_of() {  # tests_of MODULE: its test files, relative to the root
    local area name
    area=$(dirname "${1#serve_app/}")
    name=$(basename "$1" .py)
    compgen -G "tests/$area/test_$name.py" || true
    compgen -G "tests/$area/test_${name}_*.py" || true
}

prepare() {  # prepare MODULE WORKDIR: a fresh copy of its package and tests, with mutmut's settings
    local module=$1 work=$2 package area tests
    package=${module%%/*}
    area=$(dirname "${module#serve_app/}")
    mapfile -t tests < <(tests_of "$module")
    if [ ${#tests[@]} -eq 0 ]; then
        echo "scripts/mutation.sh: no tests found for $module (expected tests/$area/test_$(basename "$module" .py).py)" >&2
        exit 2
    fi
    rm -rf "$work"
    mkdir -p "$work/tests/$area"
    cp -r "$package" "$work/$package"
    find "$work/$package" -name __pycache__ -prune -exec rm -rf {} +
    cp pyproject.toml "$work/"
    cp tests/conftest.py "$work/tests/"
    cp -r tests/support "$work/tests/support"
    [ -f "tests/$area/conftest.py" ] && cp "tests/$area/conftest.py" "$work/tests/$area/"
    cp "${tests[@]}" "$work/tests/$area/"
    {
        echo "[mutmut]"
        echo "source_paths = $package"
        echo "only_mutate = $module"
        echo "pytest_add_cli_args_test_selection ="
        printf '    %s\n' "${tests[@]}"
        echo "pytest_add_cli_args ="
        printf '    %s\n' -p no:cacheprovider -q -m "not slow"  # the fast tests: slow ones are run by the suite
        # the storage tests run on SQLite and PostgreSQL alike; SQLite alone decides here (the SQL is the same)
        if [ "$area" = storage ]; then printf '    %s\n' -k "not postgresql"; fi
    } >"$work/setup.cfg"
}

report() {  # report MODULE WORKDIR: one score line and the survivors; returns 1 when a mutant survived
    local module=$1 work=$2
    (cd "$work" && "$mutmut" results --all true >results.txt)
    "$root/.venv/bin/python" - "$module" "$work/results.txt" <<'EOF'
import collections, sys
module, results_path = sys.argv[1:]
status = dict(line.strip().rsplit(": ", 1) for line in open(results_path) if ": " in line)
status = {name: s for name, s in status.items() if s != "not checked"}  # outside a --sample's globs
counts = collections.Counter(status.values())
killed = counts.pop("killed", 0) + counts.pop("timeout", 0)  # a mutant that hangs the tests is caught too
total = len(status)
percent = 100.0 * killed / total if total else 100.0
print(f"{module}: killed {killed}/{total} ({percent:.1f} %)" + "".join(f", {k} {v}" for k, v in sorted(counts.items())))
for name, s in status.items():
    if s not in ("killed", "timeout"):
        print(f"    {name}: {s}")
sys.exit(1 if killed < total else 0)
EOF
}

run_module() {  # run_module MODULE [MUTANT GLOB ...]
    local module=$1 work
    shift
    work=${MUTATION_WORKDIR:-$root/build/mutation}/$(echo "${module%.py}" | tr / .)
    prepare "$module" "$work"
    echo "== $module against $(tests_of "$module" | tr '\n' ' ')" >&2
    (cd "$work" && "$mutmut" run --max-children "${MUTATION_JOBS:-$(nproc)}" "$@" >run.log 2>&1) || {
        tail -n 30 "$work/run.log" >&2
        echo "scripts/mutation.sh: mutmut failed on $module (log: $work/run.log)" >&2
        return 2
    }
    report "$module" "$work"
}

status=0
case "${1:-}" in
    -h|--help)
        sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    --list)
        for module in "${modules[@]}"; do echo "$module: $(tests_of "$module" | tr '\n' ' ')"; done
        ;;
    --sample)
        for entry in "${sample[@]}"; do
            read -r -a globs <<<"${entry#*=}"
            run_module "${entry%%=*}" "${globs[@]}" || status=1
        done
        ;;
    -*)
        echo "scripts/mutation.sh: unknown option $1 (--sample, --list, or module paths)" >&2
        exit 2
        ;;
    *)
        [ $# -gt 0 ] && modules=("$@")
        for module in "${modules[@]}"; do
            module=${module#./}
            [ -f "$module" ] || { echo "scripts/mutation.sh: no module $module" >&2; exit 2; }
            run_module "$module" || status=1
        done
        ;;
esac
exit $status
