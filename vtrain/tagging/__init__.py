"""The Debian tag recommender: one application built on the vtrain framework.

Its data (`data/`: the bundled Debian package descriptions and their
debtags), its models (`models/`), the launcher (`main`, `train`, the one
module that reads a config), its evaluation (`evaluate`, `metrics`) and its
vocabulary report (`vocabulary_report`, `results_page`, `compress`) and its
Optuna sweeps (`sweep`, `sweep_config`, `sweep_report`, `sweep_main`). The
framework (`vtrain`) never imports it.
"""
