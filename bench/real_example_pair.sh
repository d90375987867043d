#!/bin/bash
# make real-example-tv's command with two source trees back to back (issue 17: docs/performance.md).
#   bench/real_example_pair.sh BEFORE_SRC AFTER_SRC OUT_DIR
# e.g. git worktree add /tmp/before 08c2468; bench/real_example_pair.sh /tmp/before/src src /tmp/pair
# Run each tree once first (numba compiles its cache per source path). Each run's result goes to
# OUT_DIR/{before,after}; the stage times and /usr/bin/time's wall, CPU and peak memory are printed.
set -e
[ $# -eq 3 ] || { echo "usage: $0 BEFORE_SRC AFTER_SRC OUT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
args=(reconstruct "$here/../shared/data/ncem-idp-eds-tilt-series" --lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit
      --elements O Mg Si Fe Pt Ga Al Na S C Cu N --mask otsu --method eds_sirt hebt_sirt fused_tv -n 100 fused_tv=200
      --auto fused_tv --auto-grid mu=0.015,0.03,0.06,0.12,0.24)
mkdir -p "$3"
for who in before after; do
  src=$1; [ $who = after ] && src=$2
  src=$(cd "$src" && pwd)
  rm -rf "$3/$who"
  OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$src /usr/bin/time -f "%e s wall %P cpu %M KB" "$here/.venv/bin/python" -m chemtomo \
      "${args[@]}" --out "$3/$who" > "$3/$who.log" 2>&1
  echo "$who: $(grep -a 'time (s)' "$3/$who.log") | $(grep -a 'wall' "$3/$who.log")"
done
