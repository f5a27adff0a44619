#!/usr/bin/env bash
# Wheels for a GPU machine with no network whose image has torch but an older Python stack (as seen on the
# H200 image: transformers 5.17, huggingface_hub 1.33, no datasets). Pins the versions this environment has.
# transformers is cut down to the model folders seqhf and the benchmark import (auto, bert, distilbert,
# encoder_decoder, gpt2) so that the bundle plus IMDb stays under a 64 MiB transfer limit: 9 MB in all.
#   bash scripts/gpu_offline_bundle.sh DIR [PYTHON_VERSION]      (then on the GPU machine:
#   BUNDLE=DIR bash scripts/gpu_session.sh start OUT ...)
set -euo pipefail
dir=${1:?usage: gpu_offline_bundle.sh DIR [PYTHON_VERSION]} py=${2:-3.12}
pkgs="accelerate annotated-doc annotated-types anyio certifi click datasets dill filelock fsspec h11 httpcore2 httpx2
      huggingface-hub idna multiprocess packaging pydantic pydantic-core regex shellingham sniffio tomlkit tqdm
      truststore typer typing-extensions typing-inspection"
pins=$(python - $pkgs <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
PY
)
mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
platforms=""
for p in manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms="$platforms --platform ${p}_x86_64"
done
python -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp $platforms \
  -d "$dir" $pins "transformers==$(python -c 'import transformers; print(transformers.__version__)')"
tmp=$(mktemp -d)
(cd "$tmp" && unzip -q "$dir"/transformers-*.whl && for d in transformers/models/*/; do
   case $(basename "$d") in auto|bert|distilbert|encoder_decoder|gpt2) ;; *) rm -rf "$d" ;; esac
 done && tar czf "$dir/transformers-stripped.tar.gz" transformers transformers-*.dist-info)
rm -rf "$tmp" "$dir"/transformers-*.whl
du -sh "$dir"
