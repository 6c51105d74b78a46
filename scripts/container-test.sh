#!/usr/bin/env bash
# The container, built and run for real (CI runs it only when LANP_CONTAINER_TEST=1; see docs/deployment.md).
#
# Builds the torch-free CPU image (cold, then cached), exports the model's networks on the host (`lanp export`),
# runs the image as docs/deployment.md says (a model directory mounted read-only, a state volume, user 10001, LANP_*
# settings), waits for the HEALTHCHECK, scores a clip with POST /score and checks the document equals `lanp score`
# on the host (torch there: the scores within 1e-4, everything else equal), submits a job and restarts the container
# (the job must survive), checks the uid and the read-only model volume, then does the same with
# `docker-compose -f docker/compose.yaml up`. With LANP_CT_GPU_IMAGE=1 it also builds the image with torch (the GPU
# image, its CUDA wheels; it starts and scores on a CPU too) and runs the same checks on it. Removes everything it
# made and prints the figures: `cpu image: <size> MB`, build times, start-to-ready, resident memory, /score latency.
#
# Needs: docker (dockerd is started when it is not running and we are root), the project's venv on PATH (`lanp`),
# curl. Where no registry base image can be pulled, a base is made from Debian packages with mmdebstrap.
# Settings (environment): LANP_BASE_IMAGE (default python:3.11-slim), LANP_CT_MODEL + LANP_CT_CLIP (reuse a model
# directory and a clip instead of running `lanp demo --quick`; the model is copied before it is exported),
# LANP_CT_KEEP_IMAGES=1 (keep the built images for a faster rerun), LANP_CT_IMAGE (test this existing image: no
# build, and it is not removed), LANP_CT_GPU_IMAGE=1 (also the image with torch; LANP_TORCH_INDEX, default the CUDA
# 12.8 index, PyPI when that cannot be reached).
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022 # what an ordinary user has: the model the host writes must be readable by the container's uid 10001

IMAGE=${LANP_CT_IMAGE:-lanp:container-test}
GPU_IMAGE=$IMAGE-gpu
NAME=lanp-ct-$$
CONTAINERS=()
STATE_VOLUME=lanp-ct-state-$$
API_KEY=ct-key-$$
WORK=$(mktemp -d -t lanp-container-test.XXXXXX)
FIGURES=()
MADE_BASE=""
STARTED_DOCKERD=""

say() { printf '[container-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "FAIL: $*"; exit 1; }
figure() { FIGURES+=("$(printf '%-34s %s' "$1" "$2")"); say "$1: $2"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cleanup() {
    local status=$?
    set +e
    if [ "$status" -ne 0 ] && docker inspect "$NAME" >/dev/null 2>&1; then
        say "container log (last 40 lines):"
        docker logs --tail 40 "$NAME" 2>&1
    fi
    local container
    for container in "${CONTAINERS[@]}"; do docker rm -f "$container" >/dev/null 2>&1; done
    docker volume rm "$STATE_VOLUME" "$STATE_VOLUME-gpu" >/dev/null 2>&1
    [ -f "$WORK/compose.env" ] && compose down -v >/dev/null 2>&1
    if [ "${LANP_CT_KEEP_IMAGES:-0}" != 1 ] && [ -z "${LANP_CT_IMAGE:-}" ]; then
        docker image rm "$IMAGE" "$IMAGE-build" "$IMAGE-edited" "$GPU_IMAGE" >/dev/null 2>&1
        # The legacy builder leaves untagged stage leaves behind: remove the image's (labelled) ones made by this run.
        local leftover
        [ -f "$WORK/images-before" ] && for leftover in $(docker images -q --no-trunc -f dangling=true -f label=org.opencontainers.image.title=lanp-vad); do
            grep -qx "$leftover" "$WORK/images-before" || docker image rm "$leftover" >/dev/null 2>&1
        done
        [ -n "$MADE_BASE" ] && docker image rm "$MADE_BASE" >/dev/null 2>&1
    fi
    [ -n "$STARTED_DOCKERD" ] && kill "$STARTED_DOCKERD"
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

ensure_docker() {
    docker info >/dev/null 2>&1 && return
    if ! command -v dockerd >/dev/null || [ "$(id -u)" != 0 ]; then
        die "docker is not running (and dockerd cannot be started here)"
    fi
    say "starting dockerd (log: /tmp/lanp-container-test-dockerd.log)"
    dockerd >/tmp/lanp-container-test-dockerd.log 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
    die "dockerd did not come up"
}

# A base image: the registry's when it can be pulled, else Debian bookworm (python3 3.11) from the Debian archive,
# with the host's CA bundle so that pip inside the build trusts what the host trusts (TLS-inspecting proxies).
choose_base() {
    BASE=${LANP_BASE_IMAGE:-python:3.11-slim}
    if docker image inspect "$BASE" >/dev/null 2>&1 || timeout 60 docker pull -q "$BASE" >/dev/null 2>&1; then
        say "base image: $BASE"
        return
    fi
    BASE=lanp-base:bookworm
    if docker image inspect "$BASE" >/dev/null 2>&1; then
        say "base image: $BASE (present)"
        return
    fi
    command -v mmdebstrap >/dev/null || die "no base image can be pulled and mmdebstrap is missing (apt-get install mmdebstrap)"
    local ca started
    ca=$(readlink -f "$(python3 -c 'import ssl; print(ssl.get_default_verify_paths().openssl_cafile)')")
    say "no registry base can be pulled: making $BASE with mmdebstrap (CA bundle: $ca)"
    started=$(now)
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook="cp '$ca' \"\$1/etc/ssl/certs/host-ca-bundle.crt\"" bookworm - |
        docker import --change 'ENV PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt' --change 'CMD ["python3"]' - "$BASE" >/dev/null
    MADE_BASE=$BASE
    figure "base image made in" "$(since "$started") s ($(image_size "$BASE"))"
}

image_size() { docker image inspect -f '{{.Size}}' "$1" | python3 -c 'import sys; print(f"{int(sys.stdin.read()) / 1e6:.0f} MB")'; }

# Build $1 (cold, then from the cache, then after a source change); $2: the torch index (none: the CPU image).
build_image() {
    local image=$1 index=${2:-} started
    local args=(--network host --build-arg "BASE_IMAGE=$BASE")
    [ -n "$index" ] && args+=(--build-arg "TORCH_INDEX=$index")
    say "cold build (--no-cache): docker build ${args[*]} -t $image ."
    started=$(now)
    docker build --force-rm --no-cache "${args[@]}" -t "$image" . >"$WORK/build.log" 2>&1 ||
        { tail -30 "$WORK/build.log"; die "docker build failed"; }
    figure "$image build, cold (--no-cache)" "$(since "$started") s"
    started=$(now)
    docker build --force-rm "${args[@]}" -t "$image" . >"$WORK/build.log" 2>&1 ||
        { tail -30 "$WORK/build.log"; die "cached docker build failed"; }
    figure "$image build, cached (no change)" "$(since "$started") s"
    # A rebuild after a source change: the tracked files with one line appended to a module, in a scratch context.
    rm -rf "$WORK/context" && mkdir "$WORK/context"
    git ls-files -z | tar --null -T - -c | tar -x -C "$WORK/context"
    echo "# a source change (scripts/container-test.sh)" >>"$WORK/context/service/__init__.py"
    started=$(now)
    docker build --force-rm "${args[@]}" -t "$image-edited" "$WORK/context" >"$WORK/build.log" 2>&1 ||
        { tail -30 "$WORK/build.log"; die "docker build after a source change failed"; }
    figure "$image build, cached (a source change)" "$(since "$started") s"
    docker image rm "$image-edited" >/dev/null
    docker build -q "${args[@]}" --target build -t "$IMAGE-build" . >/dev/null # from the cache: names the build stage
    say "largest parts of $image's venv (MB):"
    docker run --rm --entrypoint sh "$image" -c \
        'du -sm /opt/venv/lib/python3.11/site-packages/* | sort -rn | head -8' | sed 's/^/    /'
}

build_images() {
    build_image "$IMAGE"
    docker run --rm --entrypoint python "$IMAGE" -c \
        'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is not None)' ||
        die "the CPU image holds torch"
    figure "cpu image" "$(image_size "$IMAGE") (no torch)"
    echo "cpu image: $(image_size "$IMAGE")"
    if [ "${LANP_CT_GPU_IMAGE:-0}" = 1 ]; then
        local index=${LANP_TORCH_INDEX:-https://download.pytorch.org/whl/cu128}
        if ! curl -sf --max-time 20 -o /dev/null "$index/torch/"; then
            say "the torch index $index cannot be reached: torch comes from PyPI (its Linux wheel is the CUDA build)"
            index=https://pypi.org/simple
        fi
        build_image "$GPU_IMAGE" "$index"
        figure "gpu image" "$(image_size "$GPU_IMAGE") (torch from $index)"
    fi
}

make_model() {
    if [ -n "${LANP_CT_MODEL:-}" ]; then
        MODEL=$(readlink -f "$LANP_CT_MODEL")
        CLIP=$(readlink -f "${LANP_CT_CLIP:?LANP_CT_CLIP must name a clip when LANP_CT_MODEL is set}")
    else
        say "lanp demo --quick (a trained model directory and a held-back clip)"
        lanp demo --quick --out "$WORK/demo" >"$WORK/demo.log" 2>&1 || { tail -20 "$WORK/demo.log"; die "lanp demo failed"; }
        MODEL=$WORK/demo/model
        CLIP=$(find "$WORK/demo/held_out" -name '*.mp4' | sort | head -1)
    fi
    cp -r "$MODEL" "$WORK/model" # exported in a copy: a model given by LANP_CT_MODEL stays as it was
    MODEL=$WORK/model
    lanp export "$MODEL" 2>&1 | sed 's/^/    /'
    say "model: $MODEL ($(stat -c %A "$MODEL")), clip: $CLIP"
    lanp score "$CLIP" --model "$MODEL" >"$WORK/host.json"
}

# Wait until GET /readyz answers 200 (model loaded and warm); prints the seconds since $2.
wait_ready() {
    local port=$1 started=$2
    for _ in $(seq 600); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && { since "$started"; return; }
        sleep 0.5
    done
    die "the service on port $port was not ready after 300 s"
}

wait_healthy() {
    for _ in $(seq 200); do
        case $(docker inspect -f '{{.State.Health.Status}}' "$1") in
            healthy) return ;;
            unhealthy) die "the HEALTHCHECK reports $1 unhealthy" ;;
        esac
        sleep 1
    done
    die "the HEALTHCHECK did not report $1 healthy"
}

# The service's document must equal `lanp score`'s (torch on the host, the exported networks in the CPU image):
# the scores and the domain-shift figure within 1e-4, the events' frames equal, everything else equal except the
# model's name (the mount's folder name, also the first part of its id: the weights' part must be equal) and the
# runtime of the backbone.
same_as_host() {
    python3 - "$WORK/host.json" "$1" <<'EOF'
import json, sys

host, served = (json.load(open(path)) for path in sys.argv[1:3])
for document in (host, served):
    document["model"].pop("name")
    document["model"].pop("runtime")
    document["model"]["id"] = document["model"]["id"].rpartition("@")[2]
scores = ("snippet_scores", "frame_scores")
gap = max(abs(a - b) for key in scores for a, b in zip(host[key], served[key], strict=True))
if host["domain_shift"] and served["domain_shift"]:
    gap = max(gap, abs(host["domain_shift"].pop("score") - served["domain_shift"].pop("score")))
if gap > 1e-4:
    sys.exit(f"the container's scores differ from `lanp score`'s by {gap:.2g}")
spans = {name: [(s["start_frame"], s["end_frame"]) for s in document.pop("segments")]
         for name, document in (("host", host), ("served", served))}
different = sorted(key for key in (host.keys() | served.keys()) - set(scores) if host.get(key) != served.get(key))
if spans["host"] != spans["served"]:
    different.append("segments")
if different:
    sys.exit(f"the container's document differs from `lanp score` in {different}")
print(f"equal to lanp score on the host: {len(host['snippet_scores'])} snippet scores (max difference {gap:.1g}), "
      f"{len(host['frame_scores'])} frame scores, {len(spans['host'])} segments")
EOF
}

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

score_and_compare() {
    local port=$1 label=$2 header=()
    [ -n "${3:-}" ] && header=(-H "X-API-Key: $3")
    curl -sf "${header[@]}" -F "file=@$CLIP" "http://127.0.0.1:$port/score" -o "$WORK/$label.json" ||
        die "POST /score failed ($label)"
    local verdict
    verdict=$(same_as_host "$WORK/$label.json") || die "$label: the scores differ from the host's"
    say "$label: $verdict"
}

# Resident memory of every process in container $1 (the server and its decode workers), in MiB.
resident_mib() { docker exec "$1" sh -c 'cat /proc/[0-9]*/status' | awk '/^VmRSS:/ {kb += $2} END {printf "%.0f", kb / 1024}'; }

# Run image $1 as container $NAME-$2 (the state volume $STATE_VOLUME$3) and check it; NAME and PORT name it after.
run_container() {
    local image=$1 label=$2 port started
    port=$(free_port)
    PORT=$port
    NAME=lanp-ct-$$-$label
    CONTAINERS+=("$NAME")
    # As docs/deployment.md says: the model read-only at /models, the state volume at /var/lib/lanp, LANP_* settings.
    started=$(now)
    docker run -d --name "$NAME" -p "127.0.0.1:$port:8000" \
        -v "$MODEL:/models:ro" -v "$STATE_VOLUME${3:-}:/var/lib/lanp" \
        -e LANP_DEVICE=cpu -e LANP_API_KEY="$API_KEY" -e LANP_QUEUE_SIZE=4 -e LANP_MAX_SYNC_SECONDS=120 \
        "$image" >/dev/null
    local ready
    ready=$(wait_ready "$port" "$started")
    figure "$label: docker run to /readyz 200" "$ready s (cold start: model loaded and warm)"
    figure "$label: resident memory, ready" "$(resident_mib "$NAME") MiB (all processes)"
    wait_healthy "$NAME"
    figure "$label: docker run to healthy" "$(since "$started") s (first probe after the 30 s interval)"

    local unauthorized
    unauthorized=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$CLIP" "http://127.0.0.1:$port/score")
    [ "$unauthorized" = 401 ] || die "POST /score without the API key answered $unauthorized, not 401"
    score_and_compare "$port" "$label-docker-run" "$API_KEY"
    local latencies=()
    for _ in 1 2 3 4 5; do
        latencies+=("$(curl -sf -H "X-API-Key: $API_KEY" -F "file=@$CLIP" -o /dev/null -w '%{time_total}' \
            "http://127.0.0.1:$port/score")")
    done
    local median
    median=$(printf '%s\n' "${latencies[@]}" | sort -n | sed -n 3p)
    figure "$label: POST /score latency, median of 5" \
        "$(printf '%.2f' "$median") s ($(basename "$CLIP"), $(json_field num_frames <"$WORK/host.json") frames)"
    figure "$label: resident memory, after 6 scores" "$(resident_mib "$NAME") MiB (all processes)"

    say "checks: uid, read-only model volume"
    [ "$(docker exec "$NAME" id -u)" = 10001 ] || die "the container does not run as uid 10001"
    [ "$(docker exec "$NAME" awk '/^Uid:/ {print $2}' /proc/1/status)" = 10001 ] || die "PID 1 is not uid 10001"
    docker exec "$NAME" sh -c 'touch /models/written-by-container' 2>/dev/null && die "the model volume is writable"
    [ "$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/models"}}{{.RW}}{{end}}{{end}}' "$NAME")" = false ] ||
        die "the model volume is not mounted read-only"
    say "uid 10001 (PID 1 too); /models is read-only (touch fails, mount RW=false)"
}

job_survives_restart() {
    local port=$PORT job status started
    job=$(curl -sf -H "X-API-Key: $API_KEY" -F "file=@$CLIP" "http://127.0.0.1:$port/jobs" | json_field id)
    status=$(curl -sf -H "X-API-Key: $API_KEY" "http://127.0.0.1:$port/jobs/$job" | json_field status)
    say "job $job submitted ($status); docker restart $NAME"
    started=$(now)
    docker restart "$NAME" >/dev/null
    local ready
    ready=$(wait_ready "$port" "$started")
    figure "docker restart to /readyz 200" "$ready s"
    for _ in $(seq 300); do
        status=$(curl -sf -H "X-API-Key: $API_KEY" "http://127.0.0.1:$port/jobs/$job" | json_field status) ||
            die "job $job is gone after the restart"
        case $status in
            completed) break ;;
            failed | canceled) die "job $job ended $status after the restart" ;;
        esac
        sleep 1
    done
    [ "$status" = completed ] || die "job $job did not complete after the restart"
    curl -sf -H "X-API-Key: $API_KEY" "http://127.0.0.1:$port/jobs/$job/result" -o "$WORK/job.json"
    local verdict
    verdict=$(same_as_host "$WORK/job.json") || die "the job's scores differ from the host's"
    say "job $job after the restart: $status, result $verdict"
}

compose() { docker-compose -p "$NAME" --env-file "$WORK/compose.env" -f docker/compose.yaml "$@"; }

compose_up() {
    local port started
    port=$(free_port)
    mkdir -p "$WORK/compose/data"
    cp -r "$MODEL" "$WORK/compose/model"
    # No LANP_API_KEY: the compose file must leave the API open when it is unset.
    cat >"$WORK/compose.env" <<EOF
LANP_IMAGE=$IMAGE
LANP_PORT=$port
LANP_MODEL=$WORK/compose/model
LANP_DATA=$WORK/compose/data
EOF
    say "docker-compose -f docker/compose.yaml up (port $port)"
    started=$(now)
    (unset LANP_API_KEY && compose up -d --no-build >"$WORK/compose.log" 2>&1) ||
        { cat "$WORK/compose.log"; die "docker-compose up failed"; }
    local ready
    ready=$(wait_ready "$port" "$started")
    figure "compose up to /readyz 200" "$ready s"
    score_and_compare "$port" compose-up
    compose down -v >/dev/null 2>&1
    rm "$WORK/compose.env"
    say "docker-compose down -v: removed"
}

say "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
command -v lanp >/dev/null || die "lanp is not on PATH: activate the project's venv (. .venv/bin/activate)"
ensure_docker
docker images -aq --no-trunc >"$WORK/images-before"
if [ -n "${LANP_CT_IMAGE:-}" ]; then
    docker image inspect "$IMAGE" >/dev/null || die "no image $IMAGE"
    figure "image size" "$(image_size "$IMAGE") ($IMAGE, not built here)"
else
    choose_base
    build_images
fi
make_model
run_container "$IMAGE" "${IMAGE##*:}"
job_survives_restart
compose_up
if [ "${LANP_CT_GPU_IMAGE:-0}" = 1 ] && [ -z "${LANP_CT_IMAGE:-}" ]; then
    run_container "$GPU_IMAGE" "${GPU_IMAGE##*:}" -gpu # with torch, on this machine's CPU: the same checks
    docker rm -f "$NAME" >/dev/null
fi
say "all checks passed; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${FIGURES[@]}"
