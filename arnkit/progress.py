"""A progress-callback protocol the CLI fills in (arnkit itself never imports rich)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, task: str, total: int | None) -> None: ...

    def advance(self, amount: int = 1, **info: float) -> None: ...

    def finish(self) -> None: ...


def note(progress: Progress, line: str) -> None:
    """One diagnostic line through `progress` (the CLI prints it on stderr); a Progress without `note` (an older
    or a user's own) gets nothing, as before."""
    say = getattr(progress, "note", None)
    if say is not None:
        say(line)


def resumed(progress: Progress, counter: str, done: int, total: int, checkpoint: object) -> None:
    """'resuming from step N of M (checkpoint PATH)' when a training run picks up a checkpoint; a fresh run
    (done == 0) says nothing."""
    if done > 0:
        note(progress, f"resuming from {counter} {done} of {total} (checkpoint {checkpoint})")


class NullProgress:
    def start(self, task: str, total: int | None) -> None:
        pass

    def note(self, line: str) -> None:
        pass

    def advance(self, amount: int = 1, **info: float) -> None:
        pass

    def finish(self) -> None:
        pass


def keras_callback(progress: Progress, task: str, total_steps: int):
    """A keras Callback that forwards batch ends to `progress`."""
    import keras

    class _Forward(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            progress.start(task, total_steps)

        def on_train_batch_end(self, batch, logs=None):
            numeric = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            progress.advance(1, **numeric)

        def on_train_end(self, logs=None):
            progress.finish()

    return _Forward()
