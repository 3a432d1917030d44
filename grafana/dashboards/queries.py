"""PromQL building blocks: the selectors every query shares and the relabeling that gives
probe series a `target` and a `module` under either scrape config."""

from __future__ import annotations

# The selector every probe metric gets: the four template variables.
PROBE = 'job=~"$job", module=~"$module", instance=~"$instance", target=~"$target"'
# The exporter's own metrics (job sonde-exporter): `instance` is the same exporter address.
EXPORTER = 'instance=~"$instance"'
# Only the process metrics of sonde-exporter, whatever job scrapes them.
IS_SONDE = "and on(job, instance) sonde_exporter_build_info"
# One series per probe, for the per-target tables' merge of several queries into one row.
PER_TARGET = "max by (job, instance, module, target)"
# One series per assertion of a probe, for the assertion table.
PER_ASSERTION = "max by (job, instance, module, target, assertion, source, comparison)"
# Keeps series of email probes only: probe_email_send_success is in every email probe's output.
IS_EMAIL = f"and on(job, instance, module, target) probe_email_send_success{{{PROBE}}}"


def filled(expr: str, label: str, source: str, first: str) -> str:
    """`expr` with `label` kept where it is set and copied from `source` where it is empty.

    PromQL has no "if empty": label_join writes "label;source" into `label`, and label_replace
    keeps the part before the separator, or after it when nothing comes before. `first` is the
    group that picks that part out of "label;source": greedy when only `label` may hold a ";",
    lazy when only `source` may.
    """
    joined = f'label_join({expr}, "{label}", ";", "{label}", "{source}")'
    return f'label_replace({joined}, "{label}", "$1$2", "{label}", ";(.*)|{first};.*")'


def probed(expr: str) -> str:
    """`expr` (probe series) with a `target` and a `module` label under either scrape config.

    grafana/prometheus.yml sets both. The classic blackbox_exporter relabeling sets neither and
    writes the target into `instance`: `target` is taken from there, and `module` from the job
    name, the only place such a config names it. Legends and table columns built on `target`
    and `module` then show the probed address and the job for those jobs.
    """
    return filled(filled(expr, "target", "instance", "(.*)"), "module", "job", "(.*?)")
