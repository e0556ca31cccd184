"""The built-in dataset: procedural scenes of coloured shapes, written in the real on-disk formats.

Every image is a scene of 1-2 objects on a textured, coloured background. An object has a
shape (7), a colour (4), a size (small/large) and a quadrant of a 2x2 grid (top left ... bottom
right); the background has a colour (3, disjoint from the object colours) and a texture (plain,
striped, noisy). Each image gets several captions that are paraphrases of one another:
different templates, word orders and synonyms, always naming the same attributes.

The task is tuned to be learnable on one CPU thread in about a minute and to need the shapes
(benchmarks/learnability.py measures it): objects are large (a large one spans ~14 of 32 px) so
shapes are unambiguous at the rendered size; object colours and backgrounds are few, so colour
and background alone do not identify a scene; and every shape synonym contains the shape's own
name ("circle", "circle shape", "round circle"), so the zero-shot class names are words the text
tower has learned. Zero-shot prompts name the size ("a photo of a large {}."), as the class
object of a zero-shot image is always large.

Layout written by :func:`write_synthetic_dataset` (paths relative to ``out_dir``)::

    images/train/000000.png ...      train images
    images/retrieval/000000.png ...  retrieval images
    train.json      [{"image", "caption", "image_id", "paraphrases": [...]}, ...], a row per image
    train.csv       (format "csv") the same pairs as open_clip reads them: filepath<TAB>title
    shards/00000.tar ...  (format "webdataset") the same pairs as img2dataset writes them:
                    {key}.png, {key}.txt, {key}.json per sample, SHARD_SIZE samples a shard,
                    and a {shard}_stats.json with the sample count
    retrieval.json  [{"image", "caption": [captions_per_image strings]}, ...], COCO Karpathy style
    zeroshot/val/c000/0000.png ...   ImageFolder tree, one folder per "<colour> <shape>" class
    zeroshot/classes.json            {"classes": [...], "templates": ["a photo of a {}.", ...]}
    README.txt

Output is a pure function of the arguments: the same arguments give byte-identical files. Every
train format holds the same pairs in the same order with the same image bytes (the shards store
the PNG files), so a trial reads the same batches from each.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image, ImageDraw

from trainables.config import TRAIN_FORMATS

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 230),
    "yellow": (245, 220, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "gray": (128, 128, 128),
    "brown": (110, 75, 45),
    "navy": (20, 30, 80),
}
SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring", "star")
SIZES = ("small", "large")
TEXTURES = ("plain", "striped", "noisy")
# The class object of a zero-shot image is always large, and the captions always name a size,
# so the prompts do too (prompts without it are far from every caption the text tower saw).
ZEROSHOT_TEMPLATES = (
    "a photo of a large {}.",
    "a picture of a big {}.",
    "an image of a large {}.",
    "a drawing of a big {}.",
    "there is a large {}.",
    "the picture shows a big {}.",
)

GRID = 2  # objects sit in the cells of a GRID x GRID grid, at most one per cell
OBJECT_COUNTS = (1, 2)  # objects per caption scene, drawn uniformly
SUPERSAMPLE = 4  # scenes are drawn at 4x resolution and box-filtered down (anti-aliasing)
HALF_EXTENT = {"small": 0.3, "large": 0.44}  # object half-size as a fraction of a grid cell
SHARD_SIZE = 1000  # samples per WebDataset shard
MAX_CAPTION_WORDS = 30  # = pre_caption's default max_words: no caption loses words to truncation

SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
# Every synonym contains the shape's name: with synonyms that share no word ("disk" for a
# circle) the small text tower learns the shape words far too slowly for a one-minute trial.
SHAPE_WORDS = {
    "circle": ("circle", "circle shape", "round circle"),
    "square": ("square", "square shape", "square box"),
    "triangle": ("triangle", "triangle shape", "three sided triangle"),
    "cross": ("cross", "cross shape", "plus sign cross"),
    "diamond": ("diamond", "diamond shape", "rhombus diamond"),
    "ring": ("ring", "ring shape", "round ring"),
    "star": ("star", "star shape", "five pointed star"),
}
TEXTURE_WORDS = {
    "plain": ("plain", "solid", "flat"),
    "striped": ("striped", "stripy", "lined"),
    "noisy": ("noisy", "speckled", "grainy"),
}
POSITION_WORDS = {
    (0, 0): ("in the top left", "in the upper left", "at top left", "in the top left corner"),
    (0, 1): ("in the top right", "in the upper right", "at top right", "in the top right corner"),
    (1, 0): (
        "in the bottom left",
        "in the lower left",
        "at bottom left",
        "in the bottom left corner",
    ),
    (1, 1): (
        "in the bottom right",
        "in the lower right",
        "at bottom right",
        "in the bottom right corner",
    ),
}
BACKGROUND_NOUNS = ("background", "backdrop")
COUNT_WORDS = {
    1: ("one shape", "a single object", "one object"),
    2: ("two shapes", "two objects", "a pair of shapes"),
    3: ("three shapes", "three objects"),
}

# Seed-sequence stream ids: each split draws scenes and captions from its own generator.
_TRAIN_SCENES, _TRAIN_CAPTIONS, _RETRIEVAL_SCENES, _RETRIEVAL_CAPTIONS, _ZEROSHOT = range(5)


@dataclass(frozen=True)
class SceneObject:
    """One shape: ``cell`` is (row, col) in the GRID x GRID grid, ``offset`` a (dy, dx) jitter
    in cells."""

    shape: str
    colour: str
    size: str
    cell: tuple[int, int]
    offset: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Scene:
    """Objects (in distinct cells) on a background; ``texture_seed`` fixes stripes and noise."""

    objects: tuple[SceneObject, ...]
    background: str
    texture: str
    texture_seed: int = 0


def _pick(rng: np.random.Generator, options: tuple | list):
    return options[int(rng.integers(len(options)))]


def _sample_object(
    rng: np.random.Generator, cell: tuple[int, int], *, shape: str, colour: str, size: str
) -> SceneObject:
    slack = (0.5 - HALF_EXTENT[size]) * 0.6
    dy, dx = rng.uniform(-slack, slack, size=2)
    return SceneObject(shape, colour, size, cell, (float(dy), float(dx)))


def _sample_cells(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    return [divmod(int(c), GRID) for c in rng.choice(GRID * GRID, size=n, replace=False)]


def _sample_background(rng: np.random.Generator, objects: list[SceneObject]) -> Scene:
    return Scene(
        tuple(objects),
        background=_pick(rng, tuple(BACKGROUNDS)),
        texture=_pick(rng, TEXTURES),
        texture_seed=int(rng.integers(2**31)),
    )


def sample_scene(rng: np.random.Generator) -> Scene:
    """A caption scene: 1-2 objects (OBJECT_COUNTS) with uniformly drawn attributes in distinct
    cells."""
    cells = _sample_cells(rng, int(_pick(rng, OBJECT_COUNTS)))
    objects = [
        _sample_object(
            rng,
            cell,
            shape=_pick(rng, SHAPES),
            colour=_pick(rng, tuple(COLOURS)),
            size=_pick(rng, SIZES),
        )
        for cell in cells
    ]
    return _sample_background(rng, objects)


def sample_class_scene(rng: np.random.Generator, colour: str, shape: str) -> Scene:
    """A zero-shot scene: one large object of the class, plus (half the time) a small distractor
    of another colour and another shape."""
    cells = _sample_cells(rng, 2)
    objects = [_sample_object(rng, cells[0], shape=shape, colour=colour, size="large")]
    if rng.random() < 0.5:
        other_colour = _pick(rng, [c for c in COLOURS if c != colour])
        other_shape = _pick(rng, [s for s in SHAPES if s != shape])
        objects.append(
            _sample_object(rng, cells[1], shape=other_shape, colour=other_colour, size="small")
        )
    return _sample_background(rng, objects)


def _background_pixels(scene: Scene, image_size: int) -> np.ndarray:
    """(S*k, S*k, 3) uint8 background at supersampled resolution k; texture in output pixels."""
    rng = np.random.default_rng(scene.texture_seed)
    base = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    big = image_size * SUPERSAMPLE
    field = np.zeros((big, big), dtype=np.float32)
    if scene.texture == "striped":
        period = float(rng.integers(4, 9))  # in output pixels
        yy, xx = np.mgrid[0:big, 0:big] / SUPERSAMPLE
        coord = _pick(rng, (yy, xx, yy + xx))
        sign = 1.0 if base.mean() < 128 else -1.0
        field = np.where((coord // (period / 2)) % 2 == 0, 0.0, 45.0 * sign)
    elif scene.texture == "noisy":
        noise = rng.normal(0.0, 22.0, size=(image_size, image_size))
        field = np.kron(noise, np.ones((SUPERSAMPLE, SUPERSAMPLE)))
    pixels = base[None, None, :] + field[:, :, None]
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _draw_shape(draw: ImageDraw.ImageDraw, obj: SceneObject, cell: float) -> None:
    cy = (obj.cell[0] + 0.5 + obj.offset[0]) * cell
    cx = (obj.cell[1] + 0.5 + obj.offset[1]) * cell
    r = HALF_EXTENT[obj.size] * cell
    fill = COLOURS[obj.colour]
    if obj.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif obj.shape == "square":
        h = 0.85 * r
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=fill)
    elif obj.shape == "cross":
        w = 0.35 * r
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    elif obj.shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif obj.shape == "ring":
        width = max(1, round(0.38 * r))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=width)
    elif obj.shape == "star":  # five points, the inner vertices at 0.45 r; centred vertically
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else 0.45 * r
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + 0.1 * r + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}; known: {', '.join(SHAPES)}")


def render(scene: Scene, image_size: int) -> Image.Image:
    """The scene as an RGB image of ``image_size`` x ``image_size`` pixels."""
    canvas = Image.fromarray(_background_pixels(scene, image_size), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        _draw_shape(draw, obj, image_size * SUPERSAMPLE / GRID)
    return canvas.reduce(SUPERSAMPLE)


# --- captions -----------------------------------------------------------------------------------


class _Wording:
    """Word choices for one caption: random synonyms, or with ``terse`` random among the shortest
    options (used to keep long scenes within MAX_CAPTION_WORDS)."""

    def __init__(self, rng: np.random.Generator, *, terse: bool) -> None:
        self.rng, self.terse = rng, terse

    def pick(self, options: tuple[str, ...]) -> str:
        if self.terse:
            fewest = min(len(o.split()) for o in options)
            options = tuple(o for o in options if len(o.split()) == fewest)
        return _pick(self.rng, options)

    def shuffled(self, scene: Scene) -> list[SceneObject]:
        return [scene.objects[i] for i in self.rng.permutation(len(scene.objects))]


def _a(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _noun_phrase(obj: SceneObject, w: _Wording) -> str:
    """'a large red circle', with synonyms for size and shape."""
    return _a(f"{w.pick(SIZE_WORDS[obj.size])} {obj.colour} {w.pick(SHAPE_WORDS[obj.shape])}")


def _background_phrase(scene: Scene, w: _Wording, *, colour_first: bool) -> str:
    texture = w.pick(TEXTURE_WORDS[scene.texture])
    words = (scene.background, texture) if colour_first else (texture, scene.background)
    return _a(f"{words[0]} {words[1]} {w.pick(BACKGROUND_NOUNS)}")


def _listed(scene: Scene, w: _Wording) -> str:
    return _join(
        [f"{_noun_phrase(o, w)} {w.pick(POSITION_WORDS[o.cell])}" for o in w.shuffled(scene)]
    )


def _caption_photo(scene: Scene, w: _Wording) -> str:
    prefix = w.pick(("a photo of", "a picture of", "an image of", "a drawing of"))
    background = _background_phrase(scene, w, colour_first=False)
    return f"{prefix} {_listed(scene, w)} on {background}"


def _caption_backdrop_first(scene: Scene, w: _Wording) -> str:
    return f"{_background_phrase(scene, w, colour_first=False)} with {_listed(scene, w)}"


def _caption_there_is(scene: Scene, w: _Wording) -> str:
    texture, noun = w.pick(TEXTURE_WORDS[scene.texture]), w.pick(BACKGROUND_NOUNS)
    return f"there is {_listed(scene, w)}; the {noun} is {scene.background} and {texture}"


def _caption_coloured(scene: Scene, w: _Wording) -> str:
    parts = []
    for o in w.shuffled(scene):
        size, shape = w.pick(SIZE_WORDS[o.size]), w.pick(SHAPE_WORDS[o.shape])
        verb = w.pick(("colored", "coloured", "in"))
        parts.append(f"{_a(f'{size} {shape}')} {verb} {o.colour} {w.pick(POSITION_WORDS[o.cell])}")
    return f"{_join(parts)} against {_background_phrase(scene, w, colour_first=True)}"


def _caption_count(scene: Scene, w: _Wording) -> str:
    count = w.pick(COUNT_WORDS[len(scene.objects)])
    return f"{count} on {_background_phrase(scene, w, colour_first=False)}: {_listed(scene, w)}"


def _caption_position_first(scene: Scene, w: _Wording) -> str:
    prefix = w.pick(("the picture shows", "this image shows", "the scene shows"))
    parts = [f"{w.pick(POSITION_WORDS[o.cell])} {_noun_phrase(o, w)}" for o in w.shuffled(scene)]
    return f"{prefix} {_join(parts)} over {_background_phrase(scene, w, colour_first=False)}"


CAPTION_TEMPLATES: tuple[Callable[[Scene, _Wording], str], ...] = (
    _caption_photo,
    _caption_backdrop_first,
    _caption_there_is,
    _caption_coloured,
    _caption_count,
    _caption_position_first,
)


def describe(scene: Scene, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` paraphrased captions of the scene, each from a different template (n <= 6), each at
    most MAX_CAPTION_WORDS words (synonyms are shortened for scenes that need it)."""
    captions = []
    for k in rng.permutation(len(CAPTION_TEMPLATES))[:n]:
        caption = CAPTION_TEMPLATES[k](scene, _Wording(rng, terse=False))
        if len(caption.split()) > MAX_CAPTION_WORDS:
            caption = CAPTION_TEMPLATES[k](scene, _Wording(rng, terse=True))
        captions.append(caption)
    return captions


# --- writing ------------------------------------------------------------------------------------


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def _write_split(
    out_dir: Path,
    split: str,
    n: int,
    *,
    scene_rng: np.random.Generator,
    caption_rng: np.random.Generator,
    captions: int,
    image_size: int,
) -> list[tuple[str, list[str]]]:
    """Render ``n`` scenes into images/<split>/; returns (relative image path, captions) rows."""
    (out_dir / "images" / split).mkdir(parents=True)
    rows = []
    for i in range(n):
        scene = sample_scene(scene_rng)
        relative = f"images/{split}/{i:06d}.png"
        render(scene, image_size).save(out_dir / relative)
        rows.append((relative, describe(scene, caption_rng, captions)))
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    """open_clip's CSV: a tab-separated filepath/title table (paths relative to the data dir)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["filepath", "title"])
        writer.writerows([row["image"], row["caption"]] for row in rows)


def _write_shards(out_dir: Path, rows: list[dict], shard_size: int) -> str:
    """img2dataset-style shards of the train rows; returns the brace pattern of the shards."""
    (out_dir / "shards").mkdir()
    pattern = str(out_dir / "shards" / "%05d.tar")
    with wds.ShardWriter(pattern, maxcount=shard_size, verbose=0, mtime=0, encoder=False) as sink:
        for i, row in enumerate(rows):
            meta = {"key": f"{i:09d}", "status": "success", "caption": row["caption"]}
            meta |= {"image_id": row["image_id"], "paraphrases": row["paraphrases"]}
            sink.write(
                {
                    "__key__": meta["key"],
                    "png": (out_dir / row["image"]).read_bytes(),
                    "txt": row["caption"].encode("utf-8"),
                    "json": json.dumps(meta).encode("utf-8"),
                }
            )
    n_shards = -(-len(rows) // shard_size)
    for shard in range(n_shards):
        count = min(shard_size, len(rows) - shard * shard_size)
        _write_json(
            out_dir / "shards" / f"{shard:05d}_stats.json", {"count": count, "successes": count}
        )
    return f"shards/{{00000..{n_shards - 1:05d}}}.tar"


def _class_names() -> list[str]:
    return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def write_synthetic_dataset(
    out_dir: Path,
    *,
    seed: int = 0,
    n_train: int = 4096,
    n_retrieval: int = 256,
    zeroshot_per_class: int = 8,
    captions_per_image: int = 5,
    image_size: int = 32,
    formats: tuple[str, ...] = ("json",),
    shard_size: int = SHARD_SIZE,
) -> dict[str, int | str]:
    """Write the dataset (layout in the module docstring) into ``out_dir``, which must be absent
    or empty, with the train pairs in each of ``formats`` (train.json is always written;
    shards of ``shard_size`` samples), and
    return counts: ``{"seed", "train_images", "train_captions", "retrieval_images",
    "retrieval_captions", "zeroshot_classes", "zeroshot_images"}`` and, with "webdataset",
    ``"train_shards"`` (the shard pattern for data.train_shards)."""
    unknown = sorted(set(formats) - set(TRAIN_FORMATS))
    if unknown:
        raise ValueError(
            f"unknown train format {unknown[0]!r}; choose from {', '.join(TRAIN_FORMATS)}"
        )
    if not 1 <= captions_per_image <= len(CAPTION_TEMPLATES):
        raise ValueError(
            f"captions_per_image={captions_per_image}: must be 1..{len(CAPTION_TEMPLATES)} "
            "(one caption template per paraphrase)"
        )
    if image_size < 16:
        raise ValueError(f"image_size={image_size}: shapes are unreadable below 16 pixels")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; write the synthetic dataset elsewhere")
    out_dir.mkdir(parents=True, exist_ok=True)

    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([seed, k])

    train = _write_split(
        out_dir,
        "train",
        n_train,
        scene_rng=stream(_TRAIN_SCENES),
        caption_rng=stream(_TRAIN_CAPTIONS),
        captions=captions_per_image,
        image_size=image_size,
    )
    train_rows = [
        {"image": path, "caption": caps[0], "image_id": f"synth_{i:06d}", "paraphrases": caps[1:]}
        for i, (path, caps) in enumerate(train)
    ]
    _write_json(out_dir / "train.json", train_rows)
    if "csv" in formats:
        _write_csv(out_dir / "train.csv", train_rows)
    shards = _write_shards(out_dir, train_rows, shard_size) if "webdataset" in formats else None
    retrieval = _write_split(
        out_dir,
        "retrieval",
        n_retrieval,
        scene_rng=stream(_RETRIEVAL_SCENES),
        caption_rng=stream(_RETRIEVAL_CAPTIONS),
        captions=captions_per_image,
        image_size=image_size,
    )
    retrieval_rows = [{"image": path, "caption": caps} for path, caps in retrieval]
    _write_json(out_dir / "retrieval.json", retrieval_rows)

    classes = _class_names()
    zs_rng = stream(_ZEROSHOT)
    for label, name in enumerate(classes):
        folder = out_dir / "zeroshot" / "val" / f"c{label:03d}"
        folder.mkdir(parents=True)
        colour, shape = name.split(" ")
        for j in range(zeroshot_per_class):
            render(sample_class_scene(zs_rng, colour, shape), image_size).save(
                folder / f"{j:04d}.png"
            )
    _write_json(
        out_dir / "zeroshot" / "classes.json",
        {"classes": classes, "templates": list(ZEROSHOT_TEMPLATES)},
    )

    summary: dict[str, int | str] = {
        "seed": seed,
        "train_images": n_train,
        "train_captions": n_train * captions_per_image,
        "retrieval_images": n_retrieval,
        "retrieval_captions": n_retrieval * captions_per_image,
        "zeroshot_classes": len(classes),
        "zeroshot_images": len(classes) * zeroshot_per_class,
    }
    if shards:
        summary["train_shards"] = shards
    (out_dir / "README.txt").write_text(
        f"clipstudy synthetic dataset (seed {seed}): procedural {image_size}x{image_size} scenes "
        f"of {OBJECT_COUNTS[0]}-{OBJECT_COUNTS[-1]} shapes ({', '.join(SHAPES)}) in "
        f"{len(COLOURS)} colours, two sizes and a {GRID}x{GRID} grid of positions, on plain, "
        f"striped or noisy backgrounds in {len(BACKGROUNDS)} "
        f"colours. train.json holds {n_train} images with {captions_per_image} paraphrased "
        f"captions each (the first as 'caption', the rest as 'paraphrases'); retrieval.json "
        f"holds {n_retrieval} other images in COCO-Karpathy format; zeroshot/ is an ImageFolder "
        f"tree of {len(classes)} '<colour> <shape>' classes ({zeroshot_per_class} images each, "
        f"one large object plus sometimes a small distractor) with the class names and prompt "
        f"templates in zeroshot/classes.json. Written by trainables.synth (clipstudy data synth); "
        f"the same arguments reproduce identical files.\n",
        encoding="utf-8",
    )
    return summary
