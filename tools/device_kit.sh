#!/usr/bin/env bash
# The packages a GPU benchmark machine lacks, as wheels in .whl/ (git ignores it), for machines that cannot reach
# a package index but have Python 3.12 with their own CUDA torch, torchaudio and transformers.
#   tools/device_kit.sh download   here, with a package index: fetch the wheels (about 39 MB)
#   tools/device_kit.sh install    there: install them into /tmp/site, then run with PYTHONPATH=/tmp/site, e.g.
#     bash tools/device_kit.sh install && PYTHONPATH=/tmp/site python3 -m bench --device cuda --quick
# chatterbox-tts comes without its pins (torch 2.6, transformers 5.2): the machine's own versions are used.
set -euo pipefail
cd "$(dirname "$0")/.."

KIT=.whl
SITE=/tmp/site
WHEELS=(
  chatterbox-tts==0.1.7 diffusers==0.29.0 s3tokenizer==0.3.0 conformer==0.3.2 resemble-perth==1.0.1
  librosa==0.11.0 audioread==3.1.0 soxr==1.1.0 pooch==1.9.0 decorator==5.3.1 platformdirs==4.14.7
  soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 pyloudnorm==0.2.0 omegaconf==2.4.0
  setuptools==80.9.0  # perth imports pkg_resources, which newer setuptools no longer has
)
PLATFORMS=(manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 any)

case "${1:-}" in
  download)
    mkdir -p "$KIT"
    platform_flags=()
    for platform in "${PLATFORMS[@]}"; do platform_flags+=(--platform "$platform"); done
    python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${platform_flags[@]}" -d "$KIT" "${WHEELS[@]}"
    du -ch "$KIT"/*.whl | tail -1 ;;
  install)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/*.whl
    echo "Installed into $SITE; run with PYTHONPATH=$SITE" ;;
  *)
    sed -n '2,7p' "$0" | cut -c3-
    exit 2 ;;
esac
