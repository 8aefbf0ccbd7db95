"""Writes stories260K_story.json: 1024 token ids of TinyStories-style text sampled from the real
stories260K model (../shared/models/stories260K-hf) with transformers, seeded. It gives the README's
first command a real model on real model text without any tokenizer: the model ships without
Hugging Face tokenizer files, so its ids are the input.

    python examples/make_story_ids.py   # needs torch and transformers
"""
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

HERE = Path(__file__).resolve().parent
MODEL = HERE.parents[1] / "shared" / "models" / "stories260K-hf"
PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]  # "Once upon a time, ..."

torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(MODEL).eval()
ids = []
while len(ids) < 1024:
    # Each story starts from the prompt (BOS first) and runs for up to 256 sampled tokens.
    out = model.generate(torch.tensor([PROMPT]), do_sample=True, temperature=0.8, max_new_tokens=256,
                         eos_token_id=2, pad_token_id=0)
    ids += [int(t) for t in out[0] if int(t) != 2]
(HERE / "stories260K_story.json").write_text(json.dumps(ids[:1024]) + "\n")
print(f"wrote {len(ids[:1024])} ids")
