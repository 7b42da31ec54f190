#!/usr/bin/env python3
"""Real-client check: Hugging Face `transformers` loads `reclm export` and computes what reclm does.

    check_hf_transformers.py RECLM_BINARY WORK_DIR

For each variant (tied head + grouped-query attention; untied head + multi-query attention with a
non-default rope_theta and rms_norm_eps; and, where ../shared/data has GPT-2's tokenizer, a
dataset tokenized with it) the script
  (a) prepares the synthetic dataset and trains a tiny 1D model for a few steps with the CLI,
  (b) exports it with --dtype fp32 (bit-exact weights),
  (c) loads it with AutoModelForCausalLM (float32, eager attention) and the tokenizer.json with
      PreTrainedTokenizerFast, requiring no missing or unexpected weights,
  (d) compares the logits of several token sequences with `reclm logits` (every position),
  (e) compares the top-10 items from HF's last-position logits (item tokens only, history items
      left out, ties to the lower item id) with `reclm recommend`,
  (f) checks the tokenizer: every <item_N> string maps to its item_map.tsv id and back, item titles
      encode to the title tokens reclm feeds the model (read back with `reclm logits --history`
      under ID_TEXT rendering), and with GPT-2's tokenizer the reference encodings match.
LoRA variant: a run with rank-4 adapters on all seven projections; its default (merged) export is a
plain Llama directory and goes through (c)-(f) against reclm's unmerged forward; its `--lora peft`
export (base + adapter/) is loaded with PEFT's PeftModel when `peft` is importable and must give
the same logits.
Negative controls (untied variant): copies of the export with a wrong rms_norm_eps or rope_theta in
config.json must FAIL (d) — so the tolerance is shown to catch the mistakes it is meant to catch.

Tolerance for (d): max |logit_hf − logit_reclm| / max |logit_reclm| < 1e-4. Both sides compute in
float32 from identical weights; only the order of summation differs (OpenBLAS vs torch GEMMs,
softmax and RMSNorm reductions), which moves results by a few float32 ulps per op — ~1e-6 relative
for these widths and depths. A real mismatch (a wrong eps, rope_theta, rotary pairing, GQA head
mapping or a missing lm_head) moves logits by 1e-3 … 1 relative, far above 1e-4.

Exit 0: pass (or "SKIPPED: ..." when torch/transformers cannot be imported); 1: a mismatch or a
failing reclm command.
"""
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GPT2_DIR = REPO.parent / "shared" / "data" / "tokenizers" / "gpt2"
REL_TOLERANCE = 1e-4


class Mismatch(Exception):
    pass


def import_clients():
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no progress bars or advice
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for a hub
    try:
        import numpy  # noqa: F401
        import torch
        import transformers
    except Exception as e:  # ImportError, or a broken install raising something else
        print(f"SKIPPED: transformers/torch not importable ({type(e).__name__}: {e}) "
              "(install: scripts/hf_check.sh, or pip install torch transformers numpy)")
        sys.exit(0)
    return torch, transformers


def run(cmd, what):
    p = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise Mismatch(f"{what} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n"
                       f"{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p.stdout


class Variant:
    def __init__(self, name, dataset, sets, controls=False, lora=False):
        self.name, self.dataset, self.sets, self.controls = name, dataset, sets, controls
        self.lora = lora


def train_and_export(reclm, work, variant):
    run_dir, hf_dir = work / f"run_{variant.name}", work / f"hf_{variant.name}"
    sets = [f"data.dataset={variant.dataset}", f"train.run_dir={run_dir}", "train.steps=30",
            "train.log_every=10", "eval.val_every=0", *variant.sets]
    run([reclm, "train", "--config", "configs/tiny_rec.pbtxt",
         *[a for s in sets for a in ("--set", s)]], f"[{variant.name}] train")
    run([reclm, "export", "--run", run_dir, "--out", hf_dir, "--dtype", "fp32"],
        f"[{variant.name}] export")
    if variant.lora:
        run([reclm, "export", "--run", run_dir, "--out", work / f"peft_{variant.name}", "--dtype",
             "fp32", "--lora", "peft"], f"[{variant.name}] export --lora peft")
    return run_dir, hf_dir


def read_item_map(hf_dir):
    """[(key, token_id, token, title)] in item-id order (token ids are consecutive)."""
    lines = (hf_dir / "item_map.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "item_id\ttoken_id\ttoken\ttitle", lines[0]
    rows = []
    for line in lines[1:]:
        if line:
            key, tok_id, tok, title = line.split("\t")
            rows.append((key, int(tok_id), tok, title))
    return rows


def reclm_logits(reclm, run_dir, work, *, tokens=None, history=None, positions="all", sets=()):
    out = work / "logits.json"
    cmd = [reclm, "logits", "--run", run_dir, "--positions", positions, "--out", out]
    cmd += ["--tokens", " ".join(map(str, tokens))] if tokens is not None else ["--history", " ".join(history)]
    for s in sets:
        cmd += ["--set", s]
    run(cmd, "reclm logits")
    return json.loads(out.read_text())


def load_hf(torch, transformers, hf_dir):
    from packaging.version import Version
    dtype_kw = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, **{dtype_kw: torch.float32}, attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise Mismatch(f"{hf_dir}: transformers loaded with {bad}")
    model.eval()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_dir / "tokenizer.json"))
    return model, tok


def hf_logits(torch, model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids], dtype=torch.long)).logits[0].double().numpy()


def compare_logits(torch, model, reclm_out, label, report):
    import numpy as np
    ours = np.asarray(reclm_out["logits"], dtype=np.float64)
    theirs = hf_logits(torch, model, reclm_out["tokens"])[reclm_out["positions"]]
    if ours.shape != theirs.shape:
        raise Mismatch(f"{label}: logits shape reclm {ours.shape} vs transformers {theirs.shape}")
    diff = float(np.max(np.abs(ours - theirs)))
    scale = float(np.max(np.abs(ours)))
    rel = diff / max(scale, 1e-30)
    report.append((label, len(reclm_out["tokens"]), diff, scale, rel))
    print(f"  logits {label:<28} T={len(reclm_out['tokens']):<3} max|diff|={diff:.3e} "
          f"max|logit|={scale:.3f} rel={rel:.2e}")
    if not rel < REL_TOLERANCE:
        pos, col = np.unravel_index(np.argmax(np.abs(ours - theirs)), ours.shape)
        raise Mismatch(f"{label}: relative logit difference {rel:.3e} ≥ {REL_TOLERANCE} (worst at "
                       f"position {reclm_out['positions'][pos]}, token {col}: reclm {ours[pos, col]:.6f}, "
                       f"transformers {theirs[pos, col]:.6f})")


def negative_controls(torch, transformers, hf_dir, reclm_out, label):
    """The tolerance must catch real export mistakes: a copy of the export with one config.json
    field changed (as a wrong export would write it) must fail the logit comparison."""
    for field, wrong in (("rms_norm_eps", 1e-5), ("rope_theta", 10000.0)):
        bad_dir = hf_dir.parent / f"{hf_dir.name}_bad_{field}"
        shutil.copytree(hf_dir, bad_dir)
        config = json.loads((bad_dir / "config.json").read_text())
        config[field] = wrong
        (bad_dir / "config.json").write_text(json.dumps(config))
        model, _ = load_hf(torch, transformers, bad_dir)
        try:
            compare_logits(torch, model, reclm_out, f"{label}/control-{field}", [])
        except Mismatch as e:
            print(f"  control {label}: {field}={wrong} is caught ({str(e).split(' (')[0]})")
            continue
        raise Mismatch(f"{label}: an export with {field}={wrong} passed the comparison — "
                       "the check is not sensitive to that field")


def parse_recommend(text):
    """[(key, score)] from `reclm recommend` output (header line, then rank item score title)."""
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            rows.append((parts[1], float(parts[2])))
    return rows


def compare_recommend(reclm, torch, model, run_dir, items, bos, history, label):
    token_of = {key: tok for key, tok, _, _ in items}
    key_of = {tok: key for key, tok, _, _ in items}
    ids = [bos] + [token_of[k] for k in history]
    logits = hf_logits(torch, model, ids)[-1]
    candidates = [tok for _, tok, _, _ in items if key_of[tok] not in set(history)]
    # recommend ranks by score, ties to the lower item id (= lower token id: items are consecutive)
    ranked = sorted(candidates, key=lambda t: (-logits[t], t))[:10]
    want = [key_of[t] for t in ranked]
    got = parse_recommend(run([reclm, "recommend", "--run", run_dir, "--history", " ".join(history),
                               "-k", "10"], "reclm recommend"))
    print(f"  top-10 {label:<28} reclm {[k for k, _ in got]}")
    if [k for k, _ in got] != want:
        raise Mismatch(f"{label}: top-10 differs\n  reclm        {got}\n  transformers "
                       f"{[(key_of[t], round(float(logits[t]), 4)) for t in ranked]}")
    for (key, score), t in zip(got, ranked):  # recommend prints 4 decimals
        if abs(score - logits[t]) > 1e-4 + 1e-4 * abs(logits[t]):
            raise Mismatch(f"{label}: {key} scores {score} in reclm, {logits[t]:.6f} in transformers")


def check_tokenizer(reclm, run_dir, work, tok, items, bos, label, rng):
    # Every item token string ↔ its id, as an added (never split) token.
    for key, tok_id, token, _ in items:
        if tok.convert_tokens_to_ids(token) != tok_id or tok.encode(token, add_special_tokens=False) != [tok_id]:
            raise Mismatch(f"{label}: tokenizer.json maps {token} (item {key}) to "
                           f"{tok.encode(token, add_special_tokens=False)}, item_map.tsv says {tok_id}")
        if tok.decode([tok_id]) != token:
            raise Mismatch(f"{label}: tokenizer.json decodes {tok_id} to {tok.decode([tok_id])!r}, want {token}")
    # Titles: the ids reclm feeds for [BOS] <item> title under ID_TEXT rendering.
    sample = rng.sample([it for it in items if it[3]], 12)
    for key, tok_id, _, title in sample:
        out = reclm_logits(reclm, run_dir, work, history=[key], positions="last",
                           sets=["data.rendering=ID_TEXT"])
        ours = out["tokens"]
        if ours[:2] != [bos, tok_id]:
            raise Mismatch(f"{label}: reclm's ID_TEXT prompt for {key} starts {ours[:2]}, want [{bos}, {tok_id}]")
        theirs = tok.encode(title, add_special_tokens=False)
        if ours[2:] != theirs:
            raise Mismatch(f"{label}: title of {key} {title!r}: reclm tokens {ours[2:]}, "
                           f"transformers tokenizer {theirs}")
        if tok.decode(theirs) != title:
            raise Mismatch(f"{label}: title of {key} does not round-trip: {tok.decode(theirs)!r}")
    print(f"  tokenizer {label:<25} {len(items)} item tokens ↔ ids, {len(sample)} titles = reclm's tokens")


def check_gpt2_reference(tok, label):
    refs = json.loads((GPT2_DIR / "reference_encodings.json").read_text(encoding="utf-8"))
    for ref in refs:
        got = tok.encode(ref["text"], add_special_tokens=False)
        if got != ref["ids"]:
            raise Mismatch(f"{label}: tokenizer.json encodes {ref['text']!r} to {got}, GPT-2 gives {ref['ids']}")
    print(f"  tokenizer {label:<25} {len(refs)} GPT-2 reference encodings match")


def check_peft(reclm, work, torch, transformers, variant, run_dir, report):
    """The PEFT export (base directory + adapter/) loaded with PeftModel equals reclm's forward."""
    try:
        import peft
    except ImportError:
        print(f"note: peft not importable; the {variant.name} PEFT adapter check is not run")
        return
    peft_dir = work / f"peft_{variant.name}"
    base, _ = load_hf(torch, transformers, peft_dir)
    model = peft.PeftModel.from_pretrained(base, str(peft_dir / "adapter"))
    model.eval()
    print(f"  peft {peft.__version__}: adapter loaded")
    ids = [random.Random(11).randrange(base.config.vocab_size) for _ in range(24)]
    compare_logits(torch, model, reclm_logits(reclm, run_dir, work, tokens=ids),
                   f"{variant.name}/peft", report)
    # The adapter matters: the base alone must not match (else the check above proves nothing).
    import numpy as np
    ours = np.asarray(reclm_logits(reclm, run_dir, work, tokens=ids)["logits"], dtype=np.float64)
    with model.disable_adapter():
        plain = hf_logits(torch, model, ids)
    if np.abs(plain - ours).max() / np.abs(ours).max() < REL_TOLERANCE:
        raise Mismatch(f"{variant.name}: the base without its adapter already matches; the "
                       "trained adapter changes nothing")


def check_variant(reclm, work, torch, transformers, variant, report):
    print(f"[{variant.name}]")
    run_dir, hf_dir = train_and_export(reclm, work, variant)
    config = json.loads((hf_dir / "config.json").read_text())
    model, tok = load_hf(torch, transformers, hf_dir)
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if tied != config["tie_word_embeddings"]:
        raise Mismatch(f"{variant.name}: tie_word_embeddings {config['tie_word_embeddings']} but HF lm_head tied={tied}")
    items = read_item_map(hf_dir)
    bos, vocab = config["bos_token_id"], config["vocab_size"]
    rng = random.Random(7)
    keys = [k for k, _, _, _ in items]
    big = vocab > 20000  # GPT-2 vocabulary: compare the last position only (JSON stays small)
    positions = "last" if big else "all"

    # (d) logits: a history prompt, random ids anywhere in the vocabulary, titles + item tokens,
    # and a long item sequence (large rotary angles).
    history = rng.sample(keys, 8)
    out = reclm_logits(reclm, run_dir, work, history=history, positions=positions)
    token_of = {k: t for k, t, _, _ in items}
    if out["tokens"] != [bos] + [token_of[k] for k in history]:
        raise Mismatch(f"{variant.name}: reclm logits --history fed {out['tokens']}")
    compare_logits(torch, model, out, f"{variant.name}/history", report)
    ids = [rng.randrange(vocab) for _ in range(24)]
    compare_logits(torch, model, reclm_logits(reclm, run_dir, work, tokens=ids, positions=positions),
                   f"{variant.name}/random-ids", report)
    mixed = [bos]
    for key, tok_id, _, title in rng.sample(items, 3):
        mixed += [tok_id] + tok.encode(title, add_special_tokens=False)
    compare_logits(torch, model, reclm_logits(reclm, run_dir, work, tokens=mixed, positions=positions),
                   f"{variant.name}/items+titles", report)
    long_ids = [bos] + [token_of[k] for k in rng.sample(keys, 63)]
    long_out = reclm_logits(reclm, run_dir, work, tokens=long_ids, positions=positions)
    compare_logits(torch, model, long_out, f"{variant.name}/64-items", report)
    if variant.controls:
        negative_controls(torch, transformers, hf_dir, long_out, variant.name)
    # (e) recommend
    for n in (3, 6, 12):
        compare_recommend(reclm, torch, model, run_dir, items, bos, rng.sample(keys, n),
                          f"{variant.name}/history-{n}")
    # (f) tokenizer
    check_tokenizer(reclm, run_dir, work, tok, items, bos, variant.name, rng)
    if variant.name.startswith("gpt2"):
        check_gpt2_reference(tok, variant.name)
    if variant.lora:
        check_peft(reclm, work, torch, transformers, variant, run_dir, report)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    torch, transformers = import_clients()
    torch.manual_seed(0)
    reclm, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python "
          f"{sys.version.split()[0]}; tolerance: max|diff| / max|logit| < {REL_TOLERANCE}")
    report = []
    try:
        learned = work / "synthetic.h5"
        run([reclm, "prepare", "--synthetic", "--out", learned], "prepare --synthetic")
        common = ["model.d_model=64", "model.n_layers=2", "model.n_heads=4", "model.d_ff=96"]
        variants = [
            Variant("tied-gqa", learned, common + ["model.n_kv_heads=2", "model.tie_embeddings=true"]),
            Variant("untied-mqa", learned, common + ["model.n_kv_heads=1", "model.tie_embeddings=false",
                                                    "model.rope_theta=500", "model.norm_eps=1e-4"],
                    controls=True),
            Variant("lora-untied-gqa", learned, common + ["model.n_kv_heads=2",
                                                         "model.tie_embeddings=false",
                                                         "model.lora.rank=4"], lora=True),
        ]
        if (GPT2_DIR / "vocab.bpe").exists():
            gpt2 = work / "synthetic_gpt2.h5"
            run([reclm, "prepare", "--synthetic", "--tokenizer", GPT2_DIR, "--out", gpt2],
                "prepare --synthetic --tokenizer gpt2")
            variants.append(Variant("gpt2-tied-gqa", gpt2, common + ["model.n_kv_heads=2"]))
        else:
            print(f"note: {GPT2_DIR} absent; the GPT-2 tokenizer variant is not run")
        for v in variants:
            check_variant(reclm, work, torch, transformers, v, report)
    except Mismatch as e:
        print(f"FAIL: {e}")
        return 1
    worst = max(report, key=lambda r: r[4])
    print(f"PASS: {len(report)} logit comparisons, worst relative difference {worst[4]:.2e} "
          f"({worst[0]}, max|diff| {worst[2]:.2e}); top-10 lists identical; tokenizer agrees")
    if not os.environ.get("RECLM_HF_CHECK_KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
