"""Step sizes of a plain PyTorch training loop (no Keras, no TensorFlow).

    python demo/torch_example.py --logdir logs/torch_cnn --steps 300
    tensorboard --logdir logs          # the Step Sizes tab, beside the Keras runs

A small CNN learns the demo's generated shapes with AdamW; the monitor
hooks the optimizer's step (`register_step_pre_hook` / `post_hook`), so the
loop stays the usual one.  `after_step(loss=...)` is optional: it writes the
loss beside the step sizes (read only when the step is written).
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

import tb_stepsize.torch as tbs  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--logdir", default="logs/torch_cnn")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=5, help="log every N-th update")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    x, y = data.shapes(2048)
    images = torch.tensor(x).permute(0, 3, 1, 2)  # NHWC -> NCHW
    labels = torch.tensor(y, dtype=torch.long)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=64, shuffle=True)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 4),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    loss_fn = torch.nn.CrossEntropyLoss()

    step = 0
    with tbs.StepSizeMonitor(args.logdir, opt, model=model, every_n_steps=args.every) as monitor:
        while step < args.steps:
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
                opt.zero_grad()
                scheduler.step()
                monitor.after_step(loss=loss)
                step += 1
                if step == args.steps:
                    break
    print(f"loss {loss.item():.3f}; logged {monitor.logged_steps} steps to {args.logdir}")


if __name__ == "__main__":
    main()
