"""PromQL building blocks: the selectors every query shares and the relabeling that gives
probe series a `target` and a `module` under either scrape config."""

from __future__ import annotations

# The selector every probe metric gets: the four template variables.
PROBE = 'job=~"$job", module=~"$module", instance=~"$instance", target=~"$target"'
# The exporter's own metrics (job sonde-exporter): `instance` is the same exporter address.
EXPORTER = 'instance=~"$instance"'
# Only the process metrics of sonde-exporter, whatever job scrapes them.
IS_SONDE = "and on(job, instance) sonde_exporter_build_info"
# The labels that tell one probe's series from another's. Scheduled monitors (scraped from
# /monitors/metrics with honor_labels) add monitor_id: two monitors may probe one target with
# one module; series of /probe jobs have no monitor_id, which changes nothing for them.
PROBE_KEY = "job, instance, module, target, monitor_id"
# One series per probe, for the per-target tables' merge of several queries into one row.
PER_TARGET = f"max by ({PROBE_KEY})"
# One series per assertion of a probe, for the assertion table.
PER_ASSERTION = f"max by ({PROBE_KEY}, assertion, source, comparison)"
# Keeps series of email probes only: probe_email_send_success is in every email probe's output.
IS_EMAIL = f"and on({PROBE_KEY}) probe_email_send_success{{{PROBE}}}"


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
