"""tok_corpus.py — text sets for the tokenizer cross-check with js-tiktoken (and the bench).

Records files hold texts as b"<byte length>\\n<bytes>\\n" (core/bin/nc_tok.c, tests/tiktoken/ref.mjs).
Everything here is deterministic and comes from files every CI machine has: the shared data
(tinyshakespeare, chat/gsm8k/mmlu JSONL), Debian's license texts and Python's standard library
sources (code), plus generated Unicode edge cases.
"""
import glob
import os
import random
import unicodedata

SRC = os.environ.get("NC_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
SHARED = os.path.join(SRC, "..", "shared", "data")


def write_records(path, texts):
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        for t in texts:
            b = t.encode("utf-8") if isinstance(t, str) else t
            f.write(b"%d\n" % len(b) + b + b"\n")
    os.replace(tmp, path)


def paragraphs(text, limit=None):
    out, used = [], 0
    for p in text.split("\n\n"):
        out.append(p + "\n\n")
        used += len(p) + 2
        if limit and used >= limit:
            break
    return out


def _read(path, limit):
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", "replace")


def shakespeare():
    return _read(os.path.join(SHARED, "tinyshakespeare", "input.txt"), None)


def debian_sample(limit_per_source=400_000):
    """Varied real text: prose, dialogue JSON, math, exam questions, licenses, Python code."""
    texts = []
    for rel, lim in (("chat/sgd.jsonl", limit_per_source), ("chat/topical_chat.jsonl", limit_per_source),
                     ("gsm8k/train.jsonl", limit_per_source), ("mmlu_redux/mmlu_redux.jsonl", limit_per_source)):
        p = os.path.join(SHARED, rel)
        if os.path.exists(p):
            texts += paragraphs(_read(p, lim).replace("\n", "\n\n"))
    lic = sorted(glob.glob("/usr/share/common-licenses/*"))
    for p in lic:
        if os.path.isfile(p):
            texts += paragraphs(_read(p, limit_per_source))
    code, used = sorted(glob.glob("/usr/lib/python3*/[a-m]*.py")), 0
    for p in code:
        t = _read(p, 200_000)
        texts.append(t)
        used += len(t)
        if used > limit_per_source:
            break
    return texts


# Code point ranges for random Unicode text: scripts, symbols, emoji, marks, digits, spaces.
_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
           (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F),
           (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2190, 0x23FF), (0x2500, 0x27BF), (0x3000, 0x30FF),
           (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF),
           (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF), (0x20000, 0x200FF), (0xE0000, 0xE007F)]


def unicode_cases(seed=1234, n_random=400):
    r = random.Random(seed)
    fixed = [
        "Hello world, this is a test.", "", " ", "  ", "\n", "\r\n", "\r\n\r\n\r\n", "\r\r\n\n \r\n x",
        "a\r\n\r\n  b\t\t\n", " \n \n\n   \t", "x" + " " * 300 + "y", "\t" * 50, "\u3000" * 7 + "z",
        "1", "12", "123", "1234567890" * 5, "3.14159 2,718 1e10 0x1F -42 +7", "٠١٢٣٤٥٦٧٨٩", "１２３４５",
        "don't we'll I'M you'RE it's HE'S they'VE 'd 'll", "'s's's", "ſ 'ſ 'ſt", "ǅungla",
        "🙂🙃🙂", "👍🏽👍🏿", "👨‍👩‍👧‍👦 family", "🇩🇪🇯🇵 flags", "e\u0301\u0302\u0303 cafe\u0301",
        "Z\u0351\u0352\u0357\u0358algo", "日本語のテキストです。", "中文，标点！", "한국어 텍스트", "Ελληνικά κείμενα",
        "русский текст", "עברית", "العربية", "हिन्दी", "ภาษาไทย", "\u00a0nbsp\u00a0\u00a0", "\u2028\u2029",
        "\u200b\u200c\u200d zero widths", "\ufeffbom\ufeff\ufeff", "nel\u0085\u0085x", "<|endoftext|>",
        "<|fim_prefix|>a<|fim_suffix|>", "\x00\x01\x02\x7f", "tab\tsep\tvalues", "$$$ !!! ??? ...",
        "http://example.com/a?b=c&d=e#f", "foo_bar.baz(qux) {x: [1, 2]}", "\U0001d7d8\U0001d7d9",
        "\U000e0041\U000e0042", "Aa" * 200, "é" * 100, "🙂" * 40,
    ]
    out = list(fixed)
    pieces = [" ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "0", "42", "999999", ".", ",", "!", "?", "...",
              "the", " The", " quick", "é", "\u0301", "日本", "🙂", "\u00a0", "\u2003", "\u3000", "\u0085",
              "\ufeff", "<|endoftext|>"]
    for _ in range(n_random):
        s = []
        for _ in range(r.randint(1, 60)):
            if r.random() < 0.5:
                s.append(r.choice(pieces))
            else:
                lo, hi = r.choice(_RANGES)
                c = chr(r.randint(lo, hi))
                if unicodedata.category(c) not in ("Cn", "Cs"):
                    s.append(c)
        out.append("".join(s))
    return out
