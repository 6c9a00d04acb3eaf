"""Add the scene check's description of the training imagery to the bundled Kinshasa CNN
model, without training anything again.

    python scripts/add_scene_domain.py [--real ../shared/data/real]
                                       [--model resources/models/kinshasa_cnn.povmodel]

The description is computed from the two renders the network was trained on (2013 and
2015; evaluation.kinshasa.training_scene_domain) and the model file is written again with
it. Every other entry is written from the arrays it was read from: the script compares
the new file with the old one entry by entry and refuses to replace it unless every old
entry (the network's weights, the ridge, the feature domain) keeps its bytes, the new
entries are the scene domain's alone, and model.json differs only by its "scene_domain".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import zipfile
from pathlib import Path

from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import kinshasa  # noqa: E402
from poverty_mapper.core.models.model_file import load_model, save_model  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_MODEL = ROOT / "resources" / "models" / "kinshasa_cnn.povmodel"
META = "model.json"


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def changes(old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
    """What differs between the two files beyond the added scene domain (empty: nothing)."""
    problems = [f"{name} changed" for name in old if name != META and new.get(name) != old[name]]
    problems += [f"{name} added" for name in new if name not in old and not name.startswith("scene_domain/")]
    before, after = json.loads(old[META]), json.loads(new[META])
    after.pop("scene_domain", None)
    before.pop("scene_domain", None)
    if before != after:
        problems.append(f"{META} changed beyond its scene_domain")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    model = load_model(args.model)
    domain = kinshasa.training_scene_domain(args.real, model)
    if domain is None:
        sys.stderr.write("the training scenes hold too few tiles for a scene domain\n")
        return 1
    tmp = args.model.with_name(args.model.name + ".new")
    save_model(dataclasses.replace(model, scene_domain=domain), tmp)
    old, new = entries(args.model), entries(tmp)
    problems = changes(old, new)
    if problems:
        tmp.unlink()
        sys.stderr.write("refused: " + "; ".join(problems) + "\n")
        return 1
    os.replace(tmp, args.model)
    kept = sum(1 for name in old if name != META)
    added = sorted(name for name in new if name not in old)
    sys.stdout.write(
        f"wrote {args.model}: {kept} entries byte-identical (weights, ridge, feature domain), "
        f"model.json unchanged but for scene_domain, {len(added)} entries added ({', '.join(added)}); "
        f"thresholds {[round(float(t), 2) for t in domain.thresholds]} over {domain.facts.tiles} tiles\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
