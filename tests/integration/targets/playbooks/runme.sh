#!/usr/bin/env bash
# The fleet playbooks on a three-host inventory (all local, each with its own layer
# home, good's in the seed's layout and good2's in overlay2): one host fails preflight
# (btrfs) and the others go on; stage, mount and
# unmount respect holders; the demo runs and a second run changes nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /tmp/strata-playbooks-XXXXXX)
cleanup() {
  grep -o " $scratch[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

truncate -s 300M "$scratch/btrfs.img"
mkfs.btrfs -q "$scratch/btrfs.img" >/dev/null
mkdir "$scratch/btrfs" "$scratch/good" "$scratch/good2"
mount -o loop "$scratch/btrfs.img" "$scratch/btrfs"
"${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" "$here/../setup_overlay_home/files/mklayers.py" "$scratch" > "$scratch/digests.json"

cat > "$scratch/inventory.yml" <<INV
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    overlay_preflight_persist: false
    overlay_restore_at_boot: false
    overlay_layers_state_dir: $scratch/role-state
  children:
    local:
      hosts:
        localhost: {}
    fleet:
      hosts:
        good:
          overlay_home: $scratch/good/home
          overlay_layers:
            - {id: base, src: $scratch/base.tar.gz}
            - {id: app, parent: base}
        good2:
          overlay_home: $scratch/good2/home
          overlay_layout: overlay2
          overlay_layers:
            - {id: base, src: $scratch/base.tar.gz}
            - {id: app, parent: base}
        bad:
          overlay_home: $scratch/btrfs/home
          overlay_layers:
            - {id: base, src: $scratch/base.tar.gz}
INV

play() {  # log-name playbook args...
  local log="$scratch/$1.log"; shift
  set +e
  ANSIBLE_NOCOLOR=1 ansible-playbook -i "$scratch/inventory.yml" "$@" > "$log" 2>&1
  local rc=$?
  set -e
  cat "$log"
  return $rc
}
recap() {  # log host pattern
  grep -Eq "^$2 +: $3" "$scratch/$1.log" || { echo "recap of $2 in $1 does not match: $3"; exit 1; }
}

# preflight: bad fails with its reason, good is reported usable
play preflight strata.overlay.preflight -e overlay_target=fleet && { echo "preflight should fail for bad"; exit 1; }
recap preflight good "ok=[0-9]+ +changed=0 .*failed=0"
recap preflight good2 "ok=[0-9]+ +changed=0 .*failed=0"
recap preflight bad ".*failed=1"
grep -q "'overlay' is not supported over btrfs" "$scratch/preflight.log"
grep -q "overlay usable: kernel" "$scratch/preflight.log"

# stage: good gets its tree, bad stops at preflight and creates nothing
play stage strata.overlay.stage -e overlay_target=fleet && { echo "stage should fail for bad"; exit 1; }
recap stage good ".*failed=0"
recap stage good2 ".*failed=0"
recap stage bad ".*failed=1"
[ -d "$scratch/good/home/base/root/etc" ] && [ -f "$scratch/good/home/app/lower-id" ]
[ -d "$scratch/good2/home/base/diff/etc" ] && [ -f "$scratch/good2/home/app/lower" ] && [ -d "$scratch/good2/home/l" ]
grep -q '"layout": "overlay2"' "$scratch/good2/home/.strata/layout.json"
[ ! -e "$scratch/btrfs/home" ]
# Everything below runs on each good host: good's home is in the seed's layout, good2's in overlay2
# (overlay_layout in the inventory); the same plays give the same results, only where a base layer's
# files are kept differs (content: root/ or diff/).
host_checks() {  # host content-dir
  local h=$1 content=$2
  play stage-again-$h strata.overlay.stage -e overlay_target=$h
  recap stage-again-$h $h "ok=[0-9]+ +changed=0 .*failed=0"

  # mount for two holders, release one: still mounted; release the other: unmounted
  mounts='{"overlay_mounts": [{"id": "app", "holder": "web"}, {"id": "app", "holder": "db"}]}'
  play mount-$h strata.overlay.mount -e overlay_target=$h -e "$mounts"
  recap mount-$h $h "ok=1 +changed=1 "
  grep -q " $scratch/$h/home/app/merged " /proc/self/mountinfo
  play unmount-web-$h strata.overlay.unmount -e overlay_target=$h -e '{"overlay_mounts": [{"id": "app", "holder": "web"}]}'
  recap unmount-web-$h $h "ok=1 +changed=1 "
  grep -q " $scratch/$h/home/app/merged " /proc/self/mountinfo || { echo "db still holds app"; exit 1; }
  play mount-again-$h strata.overlay.mount -e overlay_target=$h -e "$mounts"
  play unmount-force-$h strata.overlay.unmount -e overlay_target=$h -e overlay_force=true \
    -e '{"overlay_mounts": [{"id": "app", "holder": "web"}]}'
  recap unmount-force-$h $h "ok=1 +changed=1 "
  if grep -q " $scratch/$h/home/app/merged " /proc/self/mountinfo; then echo "force left app mounted"; exit 1; fi

  # rolling runs: one host at a time, stop at the first failure: bad goes first and good is never reached
  play stage-serial-$h strata.overlay.stage -e overlay_target="bad:$h" -e overlay_serial=1 \
    -e overlay_max_fail_percentage=0 -e overlay_throttle=1 && { echo "stage-serial should fail"; exit 1; }
  recap stage-serial-$h bad ".*failed=1"
  if grep -Eq "^$h +:" "$scratch/stage-serial-$h.log"; then echo "serial run went on after bad failed"; exit 1; fi
  # without them (the defaults) every host is tried: good goes on after bad failed
  play stage-all-$h strata.overlay.stage -e overlay_target="bad:$h" && { echo "stage-all should fail for bad"; exit 1; }
  recap stage-all-$h $h "ok=[0-9]+ +changed=0 .*failed=0"
  # tags
  ANSIBLE_NOCOLOR=1 ansible-playbook -i "$scratch/inventory.yml" strata.overlay.unmount --list-tags | grep -q "TAGS: \[unmount\]"
  ANSIBLE_NOCOLOR=1 ansible-playbook -i "$scratch/inventory.yml" strata.overlay.remove --list-tags | grep -q "TAGS: \[remove\]"

  # lazy: a process working inside the mount keeps it busy; the message names it, lazy detaches it
  play mount-busy-$h strata.overlay.mount -e overlay_target=$h -e '{"overlay_mounts": [{"id": "app", "holder": "web"}]}'
  ( cd "$scratch/$h/home/app/merged" && exec sleep 120 ) &
  busy_pid=$!
  sleep 1
  play unmount-busy-$h strata.overlay.unmount -e overlay_target=$h -e '{"overlay_mounts": [{"id": "app", "holder": "web"}]}' \
    && { kill $busy_pid; echo "a busy unmount succeeded"; exit 1; }
  grep -q "pid $busy_pid (sleep 120: cwd)" "$scratch/unmount-busy-$h.log" || { kill $busy_pid; echo "busy holder not named"; exit 1; }
  play unmount-lazy-$h strata.overlay.unmount -e overlay_target=$h -e overlay_lazy=true \
    -e '{"overlay_mounts": [{"id": "app", "holder": "web"}]}' || { kill $busy_pid; exit 1; }
  kill $busy_pid; wait $busy_pid 2>/dev/null || true
  if grep -q " $scratch/$h/home/app/merged " /proc/self/mountinfo; then echo "lazy left app mounted"; exit 1; fi

  # remove: check mode removes nothing and says what would go; the real run removes the declared tree
  play remove-check-$h strata.overlay.remove -e overlay_target=$h --check --diff
  grep -q "would remove layer app" "$scratch/remove-check-$h.log"
  [ -d "$scratch/$h/home/app" ]
  play remove-$h strata.overlay.remove -e overlay_target=$h
  grep -q "removed \['app', 'base'\]" "$scratch/remove-$h.log"
  [ ! -e "$scratch/$h/home/app" ] && [ ! -e "$scratch/$h/home/base" ]
  play remove-again-$h strata.overlay.remove -e overlay_target=$h
  recap remove-again-$h $h "ok=[0-9]+ +changed=0 .*failed=0"

  # the declaration as extra vars (-e @tree.yml): remove takes it too, and a stage play
  # after a remove play in the same run stages again (remove leaves no declaration behind)
  cat > "$scratch/tree-$h.yml" <<TREE
overlay_layers:
  - {id: base, src: $scratch/base.tar.gz}
  - {id: app, parent: base}
overlay_mounts:
  - {id: app, holder: web}
TREE
  printf -- '- import_playbook: strata.overlay.remove\n- import_playbook: strata.overlay.stage\n' > "$scratch/restage-$h.yml"
  play stage-extra-$h strata.overlay.stage -e overlay_target=$h -e @"$scratch/tree-$h.yml"
  grep -q " $scratch/$h/home/app/merged " /proc/self/mountinfo
  play remove-extra-$h strata.overlay.remove -e overlay_target=$h -e @"$scratch/tree-$h.yml"
  grep -q "removed \['app', 'base'\]" "$scratch/remove-extra-$h.log" || { echo "remove ignored the extra vars"; exit 1; }
  [ ! -e "$scratch/$h/home/app" ] && [ ! -e "$scratch/$h/home/base" ]
  play restage-$h "$scratch/restage-$h.yml" -e overlay_target=$h -e @"$scratch/tree-$h.yml"
  [ -d "$scratch/$h/home/base/$content/etc" ] || { echo "stage after remove staged nothing"; exit 1; }
  grep -q " $scratch/$h/home/app/merged " /proc/self/mountinfo
  play remove-extra-again-$h strata.overlay.remove -e overlay_target=$h -e @"$scratch/tree-$h.yml"
  [ ! -e "$scratch/$h/home/app" ]

  # teardown to nothing: a tree with an image entry (image layers read-only below, a writable
  # layer on top), mounted; remove with overlay_remove_home takes the holders, the layers, the
  # image's layers (by its record in the home), the home with all of .strata and the role's record
  "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" "$here/../overlay_image/files/mkimages.py" "$scratch/img-$h" > /dev/null
  cat > "$scratch/imgtree-$h.yml" <<TREE
overlay_layers:
  - {id: base, src: $scratch/base.tar.gz}
  - {id: app, parent: base}
  - {id: web, image: "oci:$scratch/img-$h/layout:v1", remote_src: true}
overlay_mounts:
  - {id: app, holder: web}
  - {id: web, holder: web}
TREE
  play stage-image-$h strata.overlay.stage -e overlay_target=$h -e @"$scratch/imgtree-$h.yml"
  grep -q " $scratch/$h/home/web/merged " /proc/self/mountinfo
  [ -n "$(ls -A "$scratch/$h/home/.strata/image-records")" ] || { echo "the image was not recorded"; exit 1; }
  play teardown-check-$h strata.overlay.remove -e overlay_target=$h -e @"$scratch/imgtree-$h.yml" -e overlay_remove_home=true --check
  grep -q "would remove the layer home $scratch/$h/home" "$scratch/teardown-check-$h.log"
  [ -d "$scratch/$h/home/web" ]
  play teardown-$h strata.overlay.remove -e overlay_target=$h -e @"$scratch/imgtree-$h.yml" -e overlay_remove_home=true
  grep -q "the home $scratch/$h/home removed" "$scratch/teardown-$h.log" || { echo "teardown left the home"; exit 1; }
  [ ! -e "$scratch/$h/home" ] || { echo "teardown left $(ls -A "$scratch/$h/home")"; exit 1; }
  if grep -rlq "$scratch/$h/home" "$scratch/role-state" 2>/dev/null; then echo "teardown left the role's record"; exit 1; fi
  if grep -q " $scratch/$h/home" /proc/self/mountinfo; then echo "teardown left a mount"; exit 1; fi
  play teardown-again-$h strata.overlay.remove -e overlay_target=$h -e @"$scratch/imgtree-$h.yml" -e overlay_remove_home=true
  recap teardown-again-$h $h "ok=[0-9]+ +changed=0 .*failed=0"
  [ ! -e "$scratch/$h/home" ] || { echo "a teardown of nothing made the home"; exit 1; }
}
host_checks good root
host_checks good2 diff

# the demo, in a scratch root, twice
play demo strata.overlay.demo -e demo_root="$scratch/demo" || { echo "demo failed"; exit 1; }
grep -q "etc/motd: Welcome to the child layer." "$scratch/demo.log"
grep -q '`-- web (overlay) mounted holders: demo' "$scratch/demo.log"
play demo-again strata.overlay.demo -e demo_root="$scratch/demo"
recap demo-again localhost "ok=[0-9]+ +changed=0 .*failed=0"
# a preview of the teardown: the holders are not really released in check mode, so the home's removal is shown
play demo-clean-check strata.overlay.demo_clean -e demo_root="$scratch/demo" --check
recap demo-clean-check localhost "ok=[0-9]+ +changed=[0-9]+ .*failed=0"
grep -q "would remove $scratch/demo/home whole" "$scratch/demo-clean-check.log"
[ -d "$scratch/demo/home/web" ] && grep -q "$scratch/demo/home/web/merged" /proc/self/mountinfo
play demo-clean strata.overlay.demo_clean -e demo_root="$scratch/demo"
[ ! -e "$scratch/demo" ]
echo "playbooks: all checks passed"
