"""Shared by the benchmarks: the paper's ARN_PP row on MNIST, and its LeNet-5 trained once and cached in /tmp."""

import os
import tempfile

WEIGHTS = "/tmp/arnkit_bench_lenet.weights.h5"
# Tables 1-2, ARN_PP on MNIST (error %, gray box); "@0.4" columns use eps 0.4 instead of the default.
PAPER_ARN_PP = {"clean": 1.16, "pgd_n": 1.85, "pgd_t": 1.29, "cw_n": 1.45, "ddn_n": 1.28, "aa_n": 2.38,
                "jsma_t": 16.75, "pgd_n@0.4": 15.27, "aa_n@0.4": 26.84, "sta_n": 9.08, "sta_t": 13.73,
                "fwa_n": 25.79, "fwa_n@0.4": 43.76}


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
