#!/usr/bin/python3
"""How good are the stopword job's ranked lists? A benchmark of quality,
not of time.

Corpus: text on this machine in many languages: the translated messages
of the gettext catalogues Debian installs (/usr/share/locale/<loc>/
LC_MESSAGES/*.mo) and the translated manual pages (/usr/share/man/<loc>/,
roff stripped), cut into documents of about --doc-bytes bytes at word
boundaries; the language of a document is that of its directory ("pt_BR"
-> "pt"). The documents go through the job's own tokenizer, statistics and
scoring (build/bench/bench_stopword_rank, bench/stopword_rank.c), which
prints each language's ranked list and, beside it, the baseline: the same
number of words by plain document frequency.

Gold: the `stopwords-iso` npm package, used here only to judge (the job
never sees it). Install it with
  npm install --no-save --prefix /tmp/swiso stopwords-iso
Its words are normalised as the job's are (NFKC, case folded). Printed per
language present in both (with --min-docs documents or more): P@50, P@100
and P@200 of the ranked list and of the baseline, and the macro average;
--markdown FILE writes the same as a table.

--quick (the regression check; needs neither npm nor the catalogues): a
tiny built-in corpus, scored twice with the documents in two orders; it
fails (exit 1) unless both rankings are identical, each language's list
has min_words words (or its whole vocabulary), and the threshold-chosen
set is the list's prefix. It never judges a time.

Usage (from the repository root, after building):
  bench/stopword_quality.py [--bin build/bench/bench_stopword_rank]
      [--gold /tmp/swiso/node_modules/stopwords-iso/stopwords-iso.json]
      [--doc-bytes 400] [--max-mb-per-lang 4] [--min-docs 100]
      [--markdown bench/STOPWORDS_QUALITY.md]
  bench/stopword_quality.py --quick [--bin ...]
"""
import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import unicodedata

import gettext_mo

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))
GOLD_DEFAULT = "/tmp/swiso/node_modules/stopwords-iso/stopwords-iso.json"
# Locale codes whose stopwords-iso list is under another code.
GOLD_CODE = {"nb": "no"}


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def find_bin(given):
    if given:
        return given
    for d in ("build", "build-release", "build-quality"):
        p = os.path.join(SRC, d, "bench", "bench_stopword_rank")
        if os.access(p, os.X_OK):
            return p
    p = "/tmp/build-quality/bench/bench_stopword_rank"
    if os.access(p, os.X_OK):
        return p
    sys.exit("bench/stopword_quality.py: bench_stopword_rank not found; "
             "build it (cmake --build build) or pass --bin")


# ---- the corpus ----------------------------------------------------------

def mo_messages(path):
    """The translated strings of a gettext .mo file (not the header), as
    text, NULs (plural forms) as spaces."""
    return [m.replace(b"\x00", b" ").decode("utf-8", "replace")
            for m in gettext_mo.mo_messages(path)]


ROFF_ESCAPES = re.compile(r"\\(f\[[^]]*\]|f\(..|f.|\(..|\*\(..|\*\[[^]]*\]|"
                          r"\*.|s[+-]?\d|[&|^%:/,)~0-9]|-|e|\[[^]]*\]|"
                          r"[\"#].*$)")


def roff_text(src):
    """The running text of a manual page: requests dropped (their
    arguments kept for .B, .I, .SH and friends), escapes removed."""
    out = []
    for line in src.split("\n"):
        if line.startswith((".", "'")):
            m = re.match(r"[.']\s*(B|I|BI|BR|IB|IR|RB|RI|SH|SS|TP|IP|SM|"
                         r"SB)\b\s*(.*)", line)
            if not m:
                continue
            line = m.group(2).replace('"', " ")
        out.append(ROFF_ESCAPES.sub(lambda e: "-" if e.group(0) == "\\-"
                                    else " ", line))
    return " ".join(out)


def man_pages(root):
    """(lang, text) of the translated manual pages under root."""
    if not os.path.isdir(root):
        return
    for loc in sorted(os.listdir(root)):
        if loc.startswith("man") or not os.path.isdir(
                os.path.join(root, loc)):
            continue
        lang = re.split(r"[_@.]", loc)[0]
        for dirpath, _, files in sorted(os.walk(os.path.join(root, loc))):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    continue
                try:
                    if name.endswith(".gz"):
                        with gzip.open(path, "rb") as f:
                            raw = f.read()
                    else:
                        with open(path, "rb") as f:
                            raw = f.read()
                except OSError:
                    continue
                if raw.startswith(b".so "):
                    continue  # a link to another page
                yield lang, roff_text(raw.decode("utf-8", "replace"))


def catalogues(root):
    """(lang, text) per gettext catalogue under root."""
    if not os.path.isdir(root):
        return
    for loc in sorted(os.listdir(root)):
        d = os.path.join(root, loc, "LC_MESSAGES")
        if len(loc) > 12 or not os.path.isdir(d):
            continue
        lang = re.split(r"[_@.]", loc)[0]
        for name in sorted(os.listdir(d)):
            if name.endswith(".mo"):
                yield lang, " ".join(mo_messages(os.path.join(d, name)))


def cut(text, doc_chars):
    """text in pieces of about doc_chars characters, cut at spaces."""
    words = text.split()
    piece, size = [], 0
    for w in words:
        piece.append(w)
        size += len(w) + 1
        if size >= doc_chars:
            yield " ".join(piece)
            piece, size = [], 0
    if piece:
        yield " ".join(piece)


def corpus(args):
    """[(lang, document)], at most --max-mb-per-lang of each language."""
    limit = args.max_mb_per_lang * 1e6
    per_lang, docs = {}, []
    sources = [catalogues(args.locales)]
    if not args.no_man:
        sources.append(man_pages(args.man))
    for source in sources:
        for lang, text in source:
            for doc in cut(text, args.doc_bytes):
                if per_lang.get(lang, 0) >= limit:
                    break
                per_lang[lang] = per_lang.get(lang, 0) + len(doc.encode())
                docs.append((lang, doc))
    return docs


# ---- scoring through the C code --------------------------------------------

def rank(binary, docs, min_words, top_n, min_score, min_docs,
         baseline=True):
    """{lang: [(term, score, in_set)]}, {lang: [term]} (the baseline)."""
    cmd = [binary, "--min-words", str(min_words), "--top-n", str(top_n),
           "--min-score", str(min_score), "--min-docs", str(min_docs)]
    if baseline:
        cmd.append("--baseline")
    data = "".join("%s\t%s\n" % (lang, re.sub(r"[\t\n\r]", " ", body))
                   for lang, body in docs)
    res = subprocess.run(cmd, input=data.encode(), capture_output=True,
                         check=False)
    if res.returncode != 0:
        sys.exit("bench/stopword_quality.py: %s failed: %s" % (
            binary, res.stderr.decode(errors="replace")))
    for line in res.stderr.decode(errors="replace").splitlines():
        log(line.lstrip("# "))
    ranked, base = {}, {}
    for line in res.stdout.decode().splitlines():
        f = line.split("\t")
        if f[0] == "R":
            ranked.setdefault(f[1], []).append((f[3], float(f[4]),
                                                f[6] == "1"))
        elif f[0] == "B":
            base.setdefault(f[1], []).append(f[3])
    return ranked, base


# ---- evaluation -------------------------------------------------------------

def load_gold(path):
    if not os.path.exists(path):
        sys.exit("bench/stopword_quality.py: the gold lists are not at %s.\n"
                 "Install them (an evaluation only; never commit "
                 "node_modules):\n"
                 "  npm install --no-save --prefix /tmp/swiso stopwords-iso\n"
                 "or pass --gold PATH/stopwords-iso.json" % path)
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    return {lang: {unicodedata.normalize("NFKC", w).casefold()
                   for w in words} for lang, words in raw.items()}


def precision(words, gold, k):
    return sum(1 for w in words[:k] if w in gold) / float(k)


KS = (50, 100, 200)


def evaluate(args):
    gold = load_gold(args.gold)
    binary = find_bin(args.bin)
    docs = corpus(args)
    log("%d documents, %.1f MB" % (len(docs), sum(
        len(d.encode()) for _, d in docs) / 1e6))
    ranked, base = rank(binary, docs, max(KS), args.top_n, args.min_score,
                        args.min_docs)
    counts = {}
    for lang, _ in docs:
        counts[lang] = counts.get(lang, 0) + 1
    rows = []
    for lang in sorted(ranked):
        g = gold.get(GOLD_CODE.get(lang, lang))
        if not g or lang not in base:
            continue
        words = [w for w, _, _ in ranked[lang]]
        n_set = sum(1 for _, _, s in ranked[lang] if s)
        set_p = precision(words, g, n_set) if n_set else 0.0
        rows.append((lang, counts[lang], (n_set, set_p), len(words),
                     [precision(words, g, k) for k in KS],
                     [precision(base[lang], g, k) for k in KS]))
    return rows, len(docs)


def report(rows, n_docs, args):
    head = ("| lang | docs | set (precision) | " +
            " | ".join("P@%d ours / DF" % k for k in KS) + " |")
    lines = [head, "|" + "---|" * (3 + len(KS))]
    for lang, docs, (n_set, set_p), _, ours, df in rows:
        lines.append("| %s | %d | %d (%.2f) | %s |" % (
            lang, docs, n_set, set_p, " | ".join(
                "%.2f / %.2f" % (o, d) for o, d in zip(ours, df))))
    macro_o = [sum(r[4][i] for r in rows) / len(rows) for i in range(len(KS))]
    macro_d = [sum(r[5][i] for r in rows) / len(rows) for i in range(len(KS))]
    sizes = sorted(r[2][0] for r in rows)
    set_p = sum(r[2][1] for r in rows) / len(rows)
    lines.append("| **macro (%d languages)** | %d | median %d (%.2f) | %s |"
                 % (len(rows), n_docs, sizes[len(sizes) // 2], set_p,
                    " | ".join("**%.3f** / %.3f" % (o, d)
                               for o, d in zip(macro_o, macro_d))))
    wins = [sum(1 for r in rows if r[4][i] > r[5][i]) for i in
            range(len(KS))]
    losses = [sum(1 for r in rows if r[4][i] < r[5][i]) for i in
              range(len(KS))]
    summary = ", ".join("P@%d better in %d, worse in %d" % (k, w, l)
                        for k, w, l in zip(KS, wins, losses))
    print("\n".join(lines))
    print("\nlanguages where ours beats plain DF: " + summary)
    return lines, macro_o, macro_d, summary


# ---- --quick ---------------------------------------------------------------

QUICK_TEXT = {
    "en": ["the cat sat on the mat and the dog lay by the door",
           "a dog and a cat are in the house of the old man",
           "it is cold in the north and it is warm in the south",
           "the river runs to the sea and the sea is blue",
           "we went to the market and bought bread and milk"],
    "fr": ["le chat est sur le tapis et le chien est dans la maison",
           "la mer est bleue et le ciel est gris dans le nord",
           "il fait froid en hiver et chaud en été dans le sud",
           "nous sommes allés au marché et nous avons acheté du pain",
           "le vieux homme est dans la maison de la ville"],
    "de": ["die Katze sitzt auf der Matte und der Hund liegt an der Tür",
           "es ist kalt im Norden und warm im Süden des Landes",
           "der Fluss fließt in das Meer und das Meer ist blau",
           "wir gingen auf den Markt und kauften Brot und Milch",
           "der alte Mann ist in dem Haus in der Stadt"],
}


def quick_docs(rng):
    """120 documents per language: sentences of QUICK_TEXT and two rare
    made-up words each (from 300 per language), so that the ranked list
    goes on past the set."""
    docs = []
    for lang in sorted(QUICK_TEXT):
        rare = ["%s%s" % (lang, "".join(rng.choice("bcdfghklmnprstvz")
                                        for _ in range(6)))
                for _ in range(300)]
        for i in range(120):
            words = [rng.choice(QUICK_TEXT[lang]) for _ in range(1 + i % 3)]
            words += rng.sample(rare, 2)
            docs.append((lang, " ".join(words)))
    return docs


def quick(args):
    binary = find_bin(args.bin)
    docs = quick_docs(random.Random(7))
    shuffled = list(docs)
    random.Random(8).shuffle(shuffled)
    min_words = 40
    first, _ = rank(binary, docs, min_words, 200, 0.05, 100, False)
    second, _ = rank(binary, shuffled, min_words, 200, 0.05, 100, False)
    problems = []
    if first != second:
        problems.append("the ranking depends on the order of the documents")
    if sorted(first) != sorted(QUICK_TEXT):
        problems.append("languages ranked: %s" % sorted(first))
    for lang, words in sorted(first.items()):
        if len(words) != min_words:
            problems.append("%s: %d words, fewer than min_words %d" % (
                lang, len(words), min_words))
        flags = [s for _, _, s in words]
        n_set = sum(flags)
        if n_set == 0 or n_set == len(flags) or flags != [True] * n_set + [
                False] * (len(flags) - n_set):
            problems.append("%s: the set (%d words) is not a proper prefix "
                            "of the list" % (lang, n_set))
        scores = [sc for _, sc, _ in words]
        if scores != sorted(scores, reverse=True):
            problems.append("%s: the list is not in score order" % lang)
        if any(sc < 0.05 for _, sc, s in words if s) or any(
                sc >= 0.05 for _, sc, s in words[n_set:] if n_set < 200):
            problems.append("%s: the set is not the threshold's" % lang)
    for lang, want in (("en", "the"), ("fr", "le"), ("de", "der")):
        top = [w for w, _, _ in first.get(lang, [])[:5]]
        if want not in top:
            problems.append("%s: %r not among the first five, %s" % (
                lang, want, top))
    for p in problems:
        print("FAIL: " + p)
    if problems:
        return 1
    print("ok: %d languages, %s words; deterministic; the set is each "
          "list's prefix" % (len(first), "/".join(
              str(len(first[lang])) for lang in sorted(first))))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bin")
    ap.add_argument("--gold", default=GOLD_DEFAULT)
    ap.add_argument("--locales", default="/usr/share/locale")
    ap.add_argument("--man", default="/usr/share/man")
    ap.add_argument("--no-man", action="store_true")
    ap.add_argument("--doc-bytes", type=int, default=400)
    ap.add_argument("--max-mb-per-lang", type=float, default=4)
    ap.add_argument("--min-docs", type=int, default=100)
    ap.add_argument("--top-n", type=int, default=200)
    ap.add_argument("--min-score", type=float, default=0.02)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if args.quick:
        return quick(args)
    rows, n_docs = evaluate(args)
    if not rows:
        sys.exit("bench/stopword_quality.py: no language in both the corpus "
                 "and the gold lists")
    lines, _, _, summary = report(rows, n_docs, args)
    if args.markdown:
        cmd = "bench/stopword_quality.py " + " ".join(
            a for a in sys.argv[1:])
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(MD_HEAD % {"cmd": cmd.strip()})
            f.write("\n".join(lines) + "\n\n" + summary + ".\n")
    return 0


MD_HEAD = """# Stopword quality

Precision of each language's ranked list (`stopwords:{lang}:ranked`)
against the `stopwords-iso` lists (an evaluation only; the job never sees
them), P@k = the share of the first k words that are in the gold list,
ours / plain document frequency (the k words of highest df, the
baseline), on the text of this machine: Debian's gettext catalogues and
translated manual pages, documents of ~400 bytes, at most 4 MB per
language, the languages with 100 documents or more that stopwords-iso
has. "set" is the size of the threshold-chosen set (score >= 0.02, at
most 200), the ranked list's prefix.

```
npm install --no-save --prefix /tmp/swiso stopwords-iso
%(cmd)s
```

"""

if __name__ == "__main__":
    sys.exit(main())
