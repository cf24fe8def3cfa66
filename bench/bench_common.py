"""Shared by the attack benchmarks: the paper's LeNet-5 trained once on MNIST and cached in /tmp."""

import os
import tempfile

WEIGHTS = "/tmp/arnkit_bench_lenet.weights.h5"


def paper_lenet(epochs: int = 3):
    """The paper LeNet; weights cached across runs (written to a temp file, then renamed atomically)."""
    import keras

    from arnkit import data
    from arnkit.models import build

    model = build("lenet", (28, 28, 1), 10)
    if os.path.exists(WEIGHTS):
        model.load_weights(WEIGHTS)
        return model
    x_train, y_train, _ = data.load_arrays("mnist", "train")
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=0)
    fd, tmp = tempfile.mkstemp(suffix=".weights.h5", dir=os.path.dirname(WEIGHTS))
    os.close(fd)
    model.save_weights(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, WEIGHTS)
    return model
