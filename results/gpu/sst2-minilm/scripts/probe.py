"""Step-time probe on a random-init MiniLM-L6-shaped BERT: FFT and PC-LoRA (r=8, KD) steps, batch 32, seq 40."""
import sys, time, torch, transformers
sys.path.insert(0, ".")
from methods import pc_lora, pc_lora_loss  # the loss step moved to pc_lora_loss after this probe ran
cfg = transformers.AutoConfig.from_pretrained(".gpu/ctl/l6_config.json", num_labels=2)
dev = torch.device("cuda")
def bench(model, step_fn, n=60):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(1000, 20000, (32, 40), device=dev); mask = torch.ones_like(ids); y = torch.randint(0, 2, (32,), device=dev)
    for i in range(n + 10):
        if i == 10: torch.cuda.synchronize(); t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(model, ids, mask, y)
        opt.zero_grad(set_to_none=True); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); loss.item()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / n * 1000
m = transformers.AutoModelForSequenceClassification.from_config(cfg).to(dev)
print("fft ms/step", round(bench(m, lambda m, i, a, y: m(input_ids=i, attention_mask=a, labels=y).loss), 2))
m = transformers.AutoModelForSequenceClassification.from_config(cfg)
pc_lora.attach(m, 8); m = m.to(dev); pc_lora.set_lambda(m, 0.5)
def pc(m, i, a, y):
    out = m(input_ids=i, attention_mask=a, labels=y, output_hidden_states=True)
    t = pc_lora_loss.teacher_forward(m, input_ids=i, attention_mask=a)
    return pc_lora_loss.loss(out.loss, out.hidden_states[1:], t.hidden_states[1:], 0.5)
print("pc_lora r8 ms/step", round(bench(m, pc), 2))
