"""Services every recipe and command shares (the layer between the algorithms and the defenses).

- `context`: the run context, built once per command and passed down (dataset info + preset, workspace,
  seed, target);
- `target`: the workspace's target classifier, trained once and cached;
- `adversarial`: adversarial sets crafted or loaded as typed objects, and the seen-attack pools;
- `batches`: training batches that are a pure function of (seed, step), so a resumed run sees the same ones;
- `checkpoints`: atomic array checkpoints with a step counter;
- `training`: ONE training-run template (target -> pools -> fit -> export -> record -> closing report);
- `scoring`: gray-box scoring of a defense beside NONE (the closing report of every training run).
- `inventory` / `removal`: what a workspace holds (provenance, who references whom), and removing it safely
  (`arnkit runs`).

Nothing here imports `arnkit.defenses`, `arnkit.evaluation` orchestration, `arnkit.pipeline` or the CLI.
"""
