output "metric_types" {
  description = "The log-based metrics (model calls, tool calls, escalations), by name."
  value = merge(
    { for name, metric in google_logging_metric.kpi : name => "logging.googleapis.com/user/${metric.name}" },
    { for name, metric in google_logging_metric.agent : name => "logging.googleapis.com/user/${metric.name}" },
  )
}

output "alert_policies" {
  description = "Alert policy names by display name, the SLO and the dashboard."
  value = merge(
    { for name, policy in google_monitoring_alert_policy.kpi : name => policy.name },
    { for name, policy in google_monitoring_alert_policy.latency_burn : name => policy.name },
    { latency_slo = google_monitoring_slo.latency.name, dashboard = google_monitoring_dashboard.kpis.id },
  )
}
