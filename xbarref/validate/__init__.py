"""xbarref.validate: golden suites, candidate comparison, approximate models, ngspice checks.

Golden suites (:mod:`xbarref.validate.suite`, contract ``docs/suite-format.md``)
    Suite, SuiteCase                 many cases, each a case of docs/formats.md
    read_suite(path), write_suite(suite, path)
    read_candidate(path), write_candidate(outputs, path)   a simulator's /cases/<name>/outputs/I
    suite_case_names(path), extract_case(suite_path, name, path)

Generation (:mod:`xbarref.validate.generate`)
    PRESETS, preset_specs(preset)    quick / standard / large case specifications
    build_case(spec, seed)           draw one case with its own seeded Generator
    make_suite(preset, seed, jobs)   solve every case exactly (ngspice for small ones), in parallel

Comparison (:mod:`xbarref.validate.compare`)
    run_candidate(suite, fn)         run fn(crossbar, V) -> I over a suite, return a Comparison
    compare_files(suite_path, candidate_path)
    compare_outputs(suite, outputs), case_metrics(...), Comparison, CaseMetrics

Approximate models (:mod:`xbarref.validate.approx`)
    MODELS: ideal, first-order, aihwkit; get_model(name)

ngspice (:mod:`xbarref.validate.spice`)
    spice_operating_point, spice_check, read_rawfile, run_ngspice, find_ngspice, ...

Names are imported lazily (``import xbarref.validate`` loads nothing heavy).
"""

import importlib

_LAZY = {
    **{n: "xbarref.validate.suite" for n in (
        "Suite", "SuiteCase", "read_suite", "write_suite", "read_candidate", "write_candidate",
        "suite_case_names", "extract_case")},
    **{n: "xbarref.validate.generate" for n in ("PRESETS", "preset_specs", "build_case", "make_suite")},
    **{n: "xbarref.validate.compare" for n in (
        "run_candidate", "compare_files", "compare_outputs", "case_metrics", "Comparison", "CaseMetrics")},
    **{n: "xbarref.validate.approx" for n in ("MODELS", "get_model")},
    **{n: "xbarref.validate.spice" for n in (
        "SpiceError", "SpiceResult", "find_ngspice", "ngspice_version", "run_ngspice", "read_rawfile",
        "spice_operating_point", "relative_difference", "CheckRow", "spice_check")},
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xbarref.validate' has no attribute {name!r}")


def __dir__():
    return __all__
