"""The lab runtime: what every lab shares (run folder and config, seeded order, atomic
checkpoints and exact resume, Ctrl-C, metrics, progress, plots, DDP, the bootstrap
interval, fine-tuning). A lab is one short module on top: config, data, model, step."""
