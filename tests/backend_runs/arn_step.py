"""Run by tests/test_arn_backends.py in a subprocess with KERAS_BACKEND set (the backend is per process).

    python arn_step.py step  DIR   # one step of the backend's trainer (JaxTrainer, TorchTrainer) from DIR/initial.npz
                                   # on DIR/batch.npz -> DIR/<backend>.npz, .json
    python arn_step.py fall  DIR   # 30 tiny steps from scratch; their losses -> DIR/fall-<backend>.json
    python arn_step.py dp    DIR   # like step, under keras.distribution.DataParallel when >1 device
    python arn_step.py resume DIR  # 4 seeded steps straight vs 2, checkpoint, a fresh ARN, 2 more -> DIR/resume-*.npz
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np


def load_arn(directory: Path):
    from arnkit.defenses.arn import ARN, ARNConfig, read_checkpoint

    meta, _ = read_checkpoint(directory / "initial.npz")
    guide_path = directory / "guide.keras"
    guide = keras.saving.load_model(guide_path) if guide_path.exists() else None
    arn = ARN(image_shape=meta["image_shape"], num_attacks=meta["num_attacks"],
              config=ARNConfig.from_dict(meta["config"]), guide=guide)
    arn.compile()
    return arn.restore_checkpoint(directory / "initial.npz")


def one_step(directory: Path, name: str) -> None:
    from arnkit.defenses.arn import trainer_for

    batch = np.load(directory / "batch.npz")
    arn = load_arn(directory)
    trainer = trainer_for(arn)
    noise = {"normal": batch["normal"], "uniform": batch["uniform"]}
    losses = trainer.train_step(batch["x_adv"], batch["x_nat"], noise=noise)
    trainer.sync()
    arn.save_checkpoint(directory / f"{name}.npz")
    (directory / f"{name}.json").write_text(json.dumps({"losses": losses, "devices": len(_devices()),
                                                        "backend": keras.backend.backend()}))


def losses_fall(directory: Path) -> None:
    from arnkit.defenses.arn import ARN, ARNConfig, trainer_for

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # Blobs on a dark background, and two kinds of noise on them: a tiny restoration task.
    x_nat = np.zeros((128, 28, 28, 1), np.float32)
    for i, (r, c) in enumerate(rng.integers(4, 20, size=(128, 2))):
        x_nat[i, r:r + 8, c:c + 8] = 1.0
    x_adv = np.stack([np.clip(x_nat + rng.uniform(-.3, .3, x_nat.shape), 0, 1),
                      np.clip(x_nat + .3 * np.sign(rng.normal(size=x_nat.shape)), 0, 1)], axis=1).astype(np.float32)
    arn = ARN(image_shape=(28, 28, 1), num_attacks=2,
              config=ARNConfig.for_dataset("mnist", preset="tiny", learning_rate=1e-3))
    arn.compile()
    trainer = trainer_for(arn)

    def batches(step):
        start = (step * 32) % 128
        return x_adv[start:start + 32], x_nat[start:start + 32]

    history = trainer.fit(batches, 30)
    trainer.sync()
    (directory / f"fall-{keras.backend.backend()}.json").write_text(json.dumps({"history": history, "step": arn.step}))


def resume(directory: Path) -> None:
    """The seeded noise and the step counter survive a checkpoint: 2 + 2 steps give the weights 4 steps do."""
    from arnkit.defenses.arn import ARN, ARNConfig, trainer_for

    rng = np.random.default_rng(0)
    x_nat = rng.uniform(size=(16, 28, 28, 1)).astype(np.float32)
    x_adv = np.clip(x_nat[:, None] + rng.uniform(-.3, .3, (16, 2, 28, 28, 1)), 0, 1).astype(np.float32)

    def batches(step):
        start = (step * 8) % 16
        return x_adv[start:start + 8], x_nat[start:start + 8]

    def fresh():
        keras.utils.set_random_seed(0)
        arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=ARNConfig.for_dataset("mnist", preset="tiny"))
        arn.compile()
        return arn

    name = keras.backend.backend()
    straight = fresh()
    trainer = trainer_for(straight, seed=3)
    trainer.fit(batches, 4)
    trainer.sync()
    straight.save_checkpoint(directory / f"resume-{name}-straight.npz")
    first = fresh()
    trainer = trainer_for(first, seed=3)
    trainer.fit(batches, 2)
    trainer.sync()
    first.save_checkpoint(directory / "half.npz")
    second = fresh().restore_checkpoint(directory / "half.npz")
    trainer = trainer_for(second, seed=3)
    assert trainer.step == 2, trainer.step
    trainer.fit(batches, 2)
    trainer.sync()
    second.save_checkpoint(directory / f"resume-{name}-resumed.npz")


def _devices():
    if keras.backend.backend() != "jax":
        return [None]
    import jax

    return jax.local_devices()


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    if mode == "step":
        one_step(folder, keras.backend.backend())
    elif mode == "dp":
        from arnkit.defenses.arn import data_parallel

        data_parallel()
        one_step(folder, "dp")
    elif mode == "resume":
        resume(folder)
    else:
        losses_fall(folder)
