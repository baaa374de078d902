"""Build the bundled Debian tag-recommendation dataset from apt's package lists.

Each example is one Debian package: its English description (the text), its
debtags (the labels), e.g. ``devel::lang:python, role::program``, its source
package and its split group. The inputs are the ``Packages`` list (which
carries ``Tag:``, ``Description-md5:`` and ``Source:``) and the
``Translation-en`` list (which carries the descriptions) of one release, both
fetched from Debian's archive via apt::

    apt-get -o Acquire::Languages=en update
    python -m vtrain.tagging.data.build_debtags --output vtrain/tagging/data/debtags.jsonl.gz

With no input flags the lists are found in ``/var/lib/apt/lists``; with
``--packages``, ``--translations`` and ``--release`` they can be given as
plain, ``.gz``, ``.xz`` or ``.lz4`` files. When a Release (or InRelease) file
is given, the inputs are checked against the SHA256 sums it lists.

Steps: join the two lists on (package, Description-md5); text = short
description + ". " + long description, with the deb822 continuation markers
removed and whitespace normalised; drop placeholder tags (see
`is_placeholder_tag`); keep packages left with at least one tag; remove exact
duplicate texts, keeping the alphabetically first package; source = the
``Source:`` field without its version (the package's own name when absent,
see `parse_source`); group = the source, merged across sources whose texts
are near-twins (word-set Jaccard >= 0.8, see `near_duplicates.near_twin_groups`)
so that the split (which hashes the group) keeps near-identical texts
together; write gzip JSON lines sorted by package (byte-for-byte
reproducible for a given zlib), and a ``.json`` file beside it with the
release, the command, the checksum and the counts.

>>> packages = '''Package: hello
... Description-md5: 1
... Tag: role::program, suite::gnu
... '''
>>> translations = '''Package: hello
... Description-md5: 1
... Description-en: example package
...  It prints a greeting.
... '''
>>> examples, _ = build_examples(packages, translations)
>>> examples
[{'package': 'hello', 'source': 'hello', 'group': 'hello', 'text': 'example package. It prints a greeting.', 'tags': ['role::program', 'suite::gnu']}]
"""

import argparse
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import shlex
import statistics
import subprocess
import sys

from vtrain.tagging.data import near_duplicates

DEFAULT_LISTS_DIR = "/var/lib/apt/lists"
APT_UPDATE_COMMAND = "apt-get -o Acquire::Languages=en update"
APT_HELPER = "/usr/lib/apt/apt-helper"
RELEASE_FIELDS = ("Origin", "Label", "Suite", "Codename", "Version", "Date", "Description")
GZIP_LEVEL = 9
PLACEHOLDER_VALUES = ("todo", "to-do")
FIELDS = ("package", "source", "group", "text", "tags")
NEAR_TWIN_THRESHOLD = near_duplicates.DEFAULT_THRESHOLD


class BuildError(RuntimeError):
    """The inputs are missing or inconsistent; the message says how to fix it."""


def parse_deb822(text):
    """Yields each stanza of a deb822 text (Packages, Translation, Release) as a dict.

    A line starting with a space or tab continues the previous field; the
    continuation is kept with its newline and leading space so that callers
    can interpret it (descriptions and tag lists do so differently).

    >>> list(parse_deb822("Package: a\\nTag: x,\\n y\\n\\nPackage: b\\n"))
    [{'Package': 'a', 'Tag': 'x,\\n y'}, {'Package': 'b'}]
    """
    stanza, field = {}, None
    for line in text.splitlines():
        if not line.strip():
            if stanza:
                yield stanza
            stanza, field = {}, None
        elif line[0] in " \t":
            if field is None:
                raise BuildError(f"deb822 continuation line with no field before it: {line!r}")
            stanza[field] += "\n" + line
        else:
            field, _, value = line.partition(":")
            stanza[field] = value.strip()
    if stanza:
        yield stanza


def parse_tags(value):
    """Splits a ``Tag:`` value (comma separated, possibly over several lines).

    >>> parse_tags("role::program, suite::gnu,\\n use::editing")
    ['role::program', 'suite::gnu', 'use::editing']
    """
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def parse_source(stanza):
    """The source package of a ``Packages`` stanza, without a version.

    ``Source:`` is absent when the source has the binary's name, and carries
    the source version in parentheses when it differs from the binary's
    (``Source: foo (1.2-3)``).

    >>> parse_source({"Package": "0ad-data", "Source": "0ad-data"})
    '0ad-data'
    >>> parse_source({"Package": "libfoo-dev", "Source": "foo (1.2-3)"})
    'foo'
    >>> parse_source({"Package": "hello"})
    'hello'
    """
    words = stanza.get("Source", "").split()
    return words[0] if words else stanza.get("Package")


def is_placeholder_tag(tag):
    """True for tags that are debtags bookkeeping rather than a property of the package.

    Dropped: ``special::*`` (the debtags editor's internal facet, e.g.
    ``special::not-yet-tagged``) and any tag whose value is ``TODO`` /
    ``to-do`` (``culture::TODO``, ``devel::lang:TODO``, ...), which only mean
    "someone should refine this facet" and carry no label information.

    >>> [is_placeholder_tag(t) for t in ("special::not-yet-tagged",
    ...                                  "devel::lang:TODO", "role::program")]
    [True, True, False]
    """
    value = tag.split("::", 1)[-1].rsplit(":", 1)[-1]
    return tag.startswith("special::") or value.lower() in PLACEHOLDER_VALUES


def parse_description(value):
    """Returns (short, long) from a ``Description-en`` value, whitespace normalised.

    The first line is the short description; each following line starts with
    one space, and a line of just " ." is an empty line between paragraphs.

    >>> parse_description("tool\\n First para.\\n .\\n Second   para.")
    ('tool', 'First para. Second para.')
    """
    first, *rest = value.split("\n")
    words = [line.strip() for line in rest if line.strip() != "."]
    return " ".join(first.split()), " ".join(" ".join(words).split())


def make_text(short, long):
    """Joins the short and long descriptions into one text.

    The separator is ". " unless the short description already ends a
    sentence, so that no ".." appears.

    >>> make_text("Text editor", "Edits text.")
    'Text editor. Edits text.'
    >>> make_text("Is it?", "")
    'Is it?'
    """
    if not long:
        return short
    separator = " " if short.endswith((".", "!", "?")) else ". "
    return short + separator + long


def read_descriptions(translations_text):
    """Maps (package, Description-md5) to the text built from ``Description-en``.

    >>> read_descriptions("Package: a\\nDescription-md5: 9\\nDescription-en: A\\n b\\n")
    {('a', '9'): 'A. b'}
    """
    descriptions = {}
    for stanza in parse_deb822(translations_text):
        if "Description-en" in stanza:
            key = (stanza.get("Package"), stanza.get("Description-md5"))
            descriptions[key] = make_text(*parse_description(stanza["Description-en"]))
    return descriptions


def read_tags(packages_text):
    """Returns (number of stanzas, {(package, Description-md5): set of tags}, {package: source}).

    Only the first tagged description of each package is kept; stanzas of the
    same package and description (several versions) pool their tags. The
    source is that of the package's first tagged stanza (`parse_source`).

    >>> stanzas, tag_sets, sources = read_tags(
    ...     "Package: a\\nSource: s (1)\\nDescription-md5: 1\\nTag: x\\n\\n"
    ...     "Package: a\\nDescription-md5: 1\\nTag: y\\n\\nPackage: b\\n")
    >>> stanzas, sorted(tag_sets[("a", "1")]), sources
    (3, ['x', 'y'], {'a': 's'})
    """
    stanzas, first_key, tag_sets, sources = 0, {}, {}, {}
    for stanza in parse_deb822(packages_text):
        stanzas += 1
        tags = parse_tags(stanza.get("Tag", ""))
        key = (stanza.get("Package"), stanza.get("Description-md5"))
        if tags and first_key.setdefault(key[0], key) == key:
            tag_sets.setdefault(key, set()).update(tags)
            sources.setdefault(key[0], parse_source(stanza))
    return stanzas, tag_sets, sources


def build_examples(packages_text, translations_text):
    """Joins the two lists into sorted, de-duplicated examples.

    Returns (examples, stages): examples are dicts with ``package``,
    ``source``, ``group``, ``text`` and ``tags`` (sorted); stages counts what
    each step kept or dropped. A package listed in several stanzas (several
    versions in one release) gets the union of the tags of the stanzas
    sharing its first description. The group is the source, merged across
    sources with near-twin texts (`near_duplicates.near_twin_groups` at
    Jaccard >= ``NEAR_TWIN_THRESHOLD``).

    >>> p = "Package: b\\nSource: bee (2)\\nDescription-md5: 1\\nTag: x::TODO, y::z\\n"
    >>> t = "Package: b\\nDescription-md5: 1\\nDescription-en: B\\n"
    >>> build_examples(p, t)[0]
    [{'package': 'b', 'source': 'bee', 'group': 'bee', 'text': 'B', 'tags': ['y::z']}]
    """
    descriptions = read_descriptions(translations_text)
    stanzas, tag_sets, sources = read_tags(packages_text)
    with_text, kept, dropped_uses = 0, {}, {}
    for (package, md5), tags in sorted(tag_sets.items()):
        if (package, md5) not in descriptions:
            continue
        with_text += 1
        for tag in tags:
            if is_placeholder_tag(tag):
                dropped_uses[tag] = dropped_uses.get(tag, 0) + 1
        real = sorted(tag for tag in tags if not is_placeholder_tag(tag))
        if real:
            kept[package] = {
                "package": package,
                "source": sources[package],
                "text": descriptions[(package, md5)],
                "tags": real,
            }
    examples = deduplicate_texts([kept[package] for package in sorted(kept)])
    examples, merged = add_groups(examples)
    stages = {
        "package_stanzas": stanzas,
        "tagged_packages": len(tag_sets),
        "tagged_with_description": with_text,
        "with_non_placeholder_tag": len(kept),
        "duplicate_texts_removed": len(kept) - len(examples),
        "placeholder_tag_uses_dropped": dict(sorted(dropped_uses.items())),
        "near_twin_threshold": NEAR_TWIN_THRESHOLD,
        "sources_merged_with_near_twins": merged,
    }
    return examples, stages


def add_groups(examples, threshold=NEAR_TWIN_THRESHOLD):
    """Adds each example's split ``group``: its source, merged over near-twin texts.

    Returns (examples with a ``group`` after ``source``, number of sources
    that joined another source's group). Two examples whose word sets have
    Jaccard >= ``threshold`` end up in one group, and with them every other
    example of both sources (union-find); the group is named after its
    alphabetically first source.

    >>> examples, merged = add_groups([
    ...     {"package": "a", "source": "a", "text": "tool to edit text files"},
    ...     {"package": "b", "source": "b", "text": "tool to edit text files fast"},
    ...     {"package": "b-doc", "source": "b", "text": "docs"},
    ...     {"package": "c", "source": "c", "text": "other"}])
    >>> [e["group"] for e in examples], merged
    (['a', 'a', 'a', 'c'], 1)
    """
    sources = [example["source"] for example in examples]
    groups = near_duplicates.near_twin_groups(sources, [e["text"] for e in examples], threshold)
    grouped = []
    for example, group in zip(examples, groups):
        with_group = dict(example, group=group)
        grouped.append({field: with_group[field] for field in FIELDS if field in with_group})
    merged = len({s for s, g in zip(sources, groups) if s != g})
    return grouped, merged


def deduplicate_texts(examples):
    """Keeps the first example of each exact text (callers sort by package first).

    >>> deduplicate_texts([{"package": "a", "text": "t"}, {"package": "b", "text": "t"}])
    [{'package': 'a', 'text': 't'}]
    """
    seen, unique = set(), []
    for example in examples:
        if example["text"] not in seen:
            seen.add(example["text"])
            unique.append(example)
    return unique


def summarize(examples):
    """The headline counts of a list of examples (as written to debtags.json).

    When every example has a ``source`` (``group``), the number of distinct
    source packages (split groups) is counted too.

    >>> summarize([{"text": "a b c", "tags": ["x", "y"]}, {"text": "d", "tags": ["x"]}])
    {'packages': 2, 'distinct_tags': 2, 'tags_with_at_least_10_uses': 0, 'median_words_per_text': 2.0, 'mean_tags_per_package': 1.5}
    """
    uses = {}
    for example in examples:
        for tag in example["tags"]:
            uses[tag] = uses.get(tag, 0) + 1
    counts = {
        "packages": len(examples),
        "distinct_tags": len(uses),
        "tags_with_at_least_10_uses": sum(1 for count in uses.values() if count >= 10),
        "median_words_per_text": float(statistics.median(len(e["text"].split()) for e in examples)),
        "mean_tags_per_package": round(sum(len(e["tags"]) for e in examples) / len(examples), 3),
    }
    for field, name in (("source", "source_packages"), ("group", "split_groups")):
        if all(field in example for example in examples):
            counts[name] = len({example[field] for example in examples})
    return counts


def jsonl_bytes(examples):
    """Serialises examples as UTF-8 JSON lines with the fixed key order of ``FIELDS``.

    >>> jsonl_bytes([{"tags": ["a"], "text": "t", "group": "s", "source": "s", "package": "p"}])
    b'{"package": "p", "source": "s", "group": "s", "text": "t", "tags": ["a"]}\\n'
    """
    lines = (
        json.dumps({field: e[field] for field in FIELDS}, ensure_ascii=False) + "\n"
        for e in examples
    )
    return "".join(lines).encode("utf-8")


def gzip_bytes(data):
    """Gzip with no file name and mtime 0, so equal input gives equal bytes.

    >>> gzip_bytes(b"x") == gzip_bytes(b"x")
    True
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(
        filename="", mode="wb", fileobj=buffer, compresslevel=GZIP_LEVEL, mtime=0
    ) as f:
        f.write(data)
    return buffer.getvalue()


def read_list(path):
    """Returns the text of an apt list, decompressing .gz, .xz or .lz4 (via apt-helper)."""
    if path.endswith(".lz4"):
        if not os.path.exists(APT_HELPER):
            raise BuildError(
                f"{path} is lz4-compressed and {APT_HELPER} (from apt) is "
                "missing. Decompress it with `lz4 -d` and pass the plain file."
            )
        data = subprocess.run(
            [APT_HELPER, "cat-file", path], check=True, stdout=subprocess.PIPE
        ).stdout
    elif path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            data = f.read()
    elif path.endswith(".xz"):
        with lzma.open(path, "rb") as f:
            data = f.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return data.decode("utf-8")


def parse_release(text):
    """Returns (metadata, sha256 by path) from a Release or PGP-signed InRelease text.

    >>> meta, sums = parse_release("Origin: Debian\\nSHA256:\\n ab 3 main/Packages\\n")
    >>> meta, sums
    ({'Origin': 'Debian'}, {'ab': 'main/Packages'})
    """
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        # The signed body starts after the armor headers' blank line.
        text = text.split("\n\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----", 1)[0]
    stanza = next(parse_deb822(text), {})
    metadata = {field: stanza[field] for field in RELEASE_FIELDS if field in stanza}
    sums = {}
    for line in stanza.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            sums[parts[0]] = parts[2]
    return metadata, sums


def describe_input(name, text, release_sums):
    """Checksum of one input, and where the Release file lists it (if given)."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    described = {"sha256": digest, "bytes": len(text.encode("utf-8"))}
    if release_sums is not None:
        if digest not in release_sums:
            raise BuildError(
                f"The {name} list (sha256 {digest}) is not listed in the Release "
                "file given: they come from different updates of the archive. "
                f"Run `{APT_UPDATE_COMMAND}` to refresh both, or omit --release."
            )
        described["release_path"] = release_sums[digest]
    return described


def find_lists(lists_dir, codename, arch):
    """Finds (packages, translations, release) for ``<codename> main`` in apt's lists dir."""
    prefix = os.path.join(lists_dir, f"*_dists_{codename}_")
    patterns = {
        "packages": f"{prefix}main_binary-{arch}_Packages*",
        "translations": f"{prefix}main_i18n_Translation-en*",
        "release": f"{prefix}InRelease",
    }
    found = {}
    for name, pattern in patterns.items():
        matches = sorted(glob.glob(pattern)) or (
            sorted(glob.glob(f"{prefix}Release")) if name == "release" else []
        )
        if not matches:
            raise BuildError(
                f"No {name} list for '{codename} main' ({arch}) in {lists_dir} "
                f"(looked for {pattern}). Fetch the lists with "
                f"`{APT_UPDATE_COMMAND}` (as root) and run again, or pass "
                "--packages, --translations and --release."
            )
        found[name] = matches[0]
    return found["packages"], found["translations"], found["release"]


def build(packages_path, translations_path, release_path, output, command):
    """Builds ``output`` (.jsonl.gz) and its metadata ``.json``; returns the metadata."""
    packages_text = read_list(packages_path)
    translations_text = read_list(translations_path)
    release, sums = ({}, None)
    if release_path:
        with open(release_path, encoding="utf-8") as f:
            release, sums = parse_release(f.read())
    # Check the inputs against the Release file before writing anything.
    source = {
        "release": release,
        "packages": describe_input("Packages", packages_text, sums),
        "translations": describe_input("Translation-en", translations_text, sums),
        "fetched_with": APT_UPDATE_COMMAND,
    }
    examples, stages = build_examples(packages_text, translations_text)
    if not examples:
        raise BuildError(
            f"No tagged package with a description in {packages_path} and "
            f"{translations_path}: are they lists of the same release?"
        )
    payload = jsonl_bytes(examples)
    compressed = gzip_bytes(payload)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "wb") as f:
        f.write(compressed)
    metadata = {
        "file": os.path.basename(output),
        "sha256": hashlib.sha256(compressed).hexdigest(),
        "jsonl_sha256": hashlib.sha256(payload).hexdigest(),
        "source": source,
        "build_command": command,
        "counts": summarize(examples),
        "stages": stages,
    }
    with open(metadata_path_for(output), "w", encoding="utf-8") as f:
        f.write(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
    return metadata


def metadata_path_for(output):
    """``x/debtags.jsonl.gz`` -> ``x/debtags.json``.

    >>> metadata_path_for("data/debtags.jsonl.gz")
    'data/debtags.json'
    """
    base = output[: -len(".jsonl.gz")] if output.endswith(".jsonl.gz") else output
    return base + ".json"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m vtrain.tagging.data.build_debtags", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--packages", help="Packages list (plain, .gz, .xz or .lz4)")
    parser.add_argument("--translations", help="Translation-en list (plain, .gz, .xz, .lz4)")
    parser.add_argument("--release", help="Release or InRelease file of the same release")
    parser.add_argument("--output", required=True, help="the .jsonl.gz file to write")
    parser.add_argument(
        "--lists-dir",
        default=DEFAULT_LISTS_DIR,
        help="where apt keeps its lists (when no input flag is given)",
    )
    parser.add_argument("--codename", default="bookworm", help="release codename to look for")
    parser.add_argument("--arch", default="amd64", help="architecture of the Packages list")
    args = parser.parse_args(argv)
    given = [args.packages, args.translations]
    if any(given) and not all(given):
        parser.error("give both --packages and --translations, or neither")
    if not args.output.endswith(".jsonl.gz"):
        parser.error(f"--output must end in .jsonl.gz, got {args.output!r}")
    return args


def main(argv=None):
    """Command-line entry point; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        if args.packages:
            inputs = (args.packages, args.translations, args.release)
        else:
            inputs = find_lists(args.lists_dir, args.codename, args.arch)
        command = shlex.join(["python", "-m", "vtrain.tagging.data.build_debtags", *argv])
        metadata = build(*inputs, args.output, command)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {"output": args.output, "sha256": metadata["sha256"], **metadata["counts"]}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
