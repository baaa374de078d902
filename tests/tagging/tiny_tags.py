"""A tiny tag dataset (JSON lines) and configs on it, for end-to-end tests in seconds."""

import json
import random

from tests import runs

# Each tag has its own words, so even a tiny model learns something.
TAG_WORDS = {
    "devel::editor": ["text", "editor", "vim", "buffer", "syntax"],
    "web::server": ["web", "server", "http", "proxy", "request"],
    "game::arcade": ["game", "player", "level", "score", "arcade"],
    "mail::client": ["mail", "inbox", "imap", "message", "smtp"],
    "role::program": ["program", "command", "tool", "utility", "line"],
}
FILLER = "a the small fast simple for with and of package".split()


def write(path, count=160, seed=0):
    """Writes `count` examples with `id`, `package`, `text` and 1-2 tags; returns `path`."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        tags = sorted(rng.sample(sorted(TAG_WORDS), rng.choice([1, 1, 2])))
        words = [rng.choice(TAG_WORDS[tag]) for tag in tags for _ in range(3)]
        words += [rng.choice(FILLER) for _ in range(4)]
        rng.shuffle(words)
        lines.append(
            json.dumps(
                {"id": f"pkg{i}", "package": f"pkg{i}", "text": " ".join(words), "tags": tags}
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def keras_config(path, **train):
    """configs/tiny.py (a pooled classifier) on the file at `path`."""
    config = runs.load_module(runs.TINY).get_config()
    config.data.path = str(path)
    config.data.min_tag_train_uses = 2
    config.data.min_word_count = 1
    config.data.batch_size = 16
    config.data.eval_batch_size = 16
    config.model.embedding_dim = 8
    config.model.hidden_units = 16
    for field, value in train.items():
        config.train[field] = value
    return config


def tfidf_config(path):
    """configs/tfidf.py on the file at `path`."""
    config = runs.load_module(runs.ROOT / "configs" / "tfidf.py").get_config()
    config.data.path = str(path)
    config.data.min_tag_train_uses = 2
    config.model.n_jobs = 1
    return config


def cnn_config(path):
    """`keras_config` with configs/cnn.py's model, shrunk."""
    config = keras_config(path)
    model = runs.load_module(runs.ROOT / "configs" / "cnn.py").get_config().model
    model.embedding_dim = 8
    model.filter_widths = (2, 3)
    model.num_filters = 4
    config.model = model
    return config


def write_noisy(path, count=8000, seed=0):
    """`count` examples over 16 tags with shared and stray words, 2-4 tags each.

    Harder than `write`: validation F1@3 keeps rising for several epochs at
    a small learning rate, so a run's best epoch is its last.
    """
    rng = random.Random(seed)
    tags = [f"area::t{i}" for i in range(16)]
    words = {tag: [f"w{i}_{j}" for j in range(12)] for i, tag in enumerate(tags)}
    common = [f"c{j}" for j in range(60)]
    lines = []
    for i in range(count):
        chosen = sorted(rng.sample(tags, rng.choice([2, 3, 4])))
        text = [rng.choice(words[tag]) for tag in chosen for _ in range(2)]
        text += [rng.choice(words[rng.choice(tags)]) for _ in range(3)]
        text += [rng.choice(common) for _ in range(6)]
        rng.shuffle(text)
        lines.append(json.dumps({"id": f"p{i}", "text": " ".join(text), "tags": chosen}))
    path.write_text("\n".join(lines) + "\n")
    return path
