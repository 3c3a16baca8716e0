"""Weight conversion: CMID training checkpoints -> backbone files for downstream toolboxes
(:mod:`.export`), the reference implementation's files -> cmid_mm (:mod:`.reference_import`),
and the check that a backbone file fits a backbone (:mod:`.arch_check`).

Imported on demand (``from cmid_mm.converters.export import ...``); the tools in
``tools/model_converters/`` and ``tools/analysis_tools/check_weights.py`` use them.
"""
