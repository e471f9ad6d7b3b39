"""The torch training runs the distributed tests compare (2 worker processes on CPU, gloo).

    python torch_distributed_helpers.py WHERE LOG_DIR [chunk=N] [every_n=N]

WHERE: `single` (one process, the whole global batch), `ddp`
(DistributedDataParallel, each of 2 ranks half the batch) or `fsdp`
(FSDP2 `fully_shard` on each layer and the root, each rank half the
batch).  Every rank writes one line `rank R logged L enabled E collectives C
weights H` into the file LOG_DIR.rankR.  Weights are float64, so that the ranks' gradient averaging
in another order than one process differs far below the float32 rounding of
what tb_stepsize records; the output layer has 3 units, so FSDP2 shards it
unevenly (2 + 1 rows).
"""

import hashlib
import os
import socket
import sys

import numpy as np
import torch
import torch.distributed as dist

X = np.random.default_rng(0).standard_normal((6, 16, 8))
Y = np.random.default_rng(1).standard_normal((6, 16, 3))


def model():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()


def train(rank, world, where, log_dir, port, chunk, every_n):
    import tb_stepsize.torch as tbs
    from tb_stepsize import torch_reduce

    if chunk:
        torch_reduce.CHUNK = chunk
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    net = model()
    wrapped = net
    if where == "ddp":
        wrapped = torch.nn.parallel.DistributedDataParallel(net)
    elif where == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for layer in (net[0], net[2]):
            fully_shard(layer, mesh=mesh)
        fully_shard(net, mesh=mesh)
    opt = torch.optim.AdamW(net.parameters(), 1e-2, weight_decay=0.1)
    monitor = tbs.StepSizeMonitor(log_dir, opt, model=wrapped, every_n_steps=every_n, on_error="raise")
    enabled = monitor.enabled
    half = slice(rank * 16 // world, (rank + 1) * 16 // world)
    for x, y in zip(X, Y):
        x, y = torch.tensor(x[half]), torch.tensor(y[half])
        loss = torch.mean((wrapped(x) - y) ** 2)
        loss.backward()
        opt.step()
        opt.zero_grad()
        monitor.after_step(loss=loss)
    monitor.close()
    combiner = getattr(getattr(monitor, "_reducer", None), "_combiner", None)
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in net.parameters()]
    weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in full)).hexdigest()[:16]
    report = (
        f"rank {rank} logged {monitor.logged_steps} enabled {int(enabled)} "
        f"collectives {combiner.collectives if combiner else 0} weights {weights}\n"
    )
    with open(f"{log_dir}.rank{rank}", "w") as f:  # not stdout: two processes' lines could interleave
        f.write(report)
    if world > 1:
        # Without the barrier one rank could tear its gloo pairs down while the
        # other still finished its last all-gather; that rank then aborted at
        # exit ("terminate called without an active exception", ~1 run in 10).
        dist.barrier()
        dist.destroy_process_group()


def main(where, log_dir, *options):
    kwargs = {k: int(v) for k, v in (o.split("=") for o in options)}
    chunk, every_n = kwargs.get("chunk", 0), kwargs.get("every_n", 1)
    if where == "single":
        return train(0, 1, where, log_dir, 0, chunk, every_n)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(train, args=(2, where, log_dir, port, chunk, every_n), nprocs=2)


if __name__ == "__main__":
    main(*sys.argv[1:])
