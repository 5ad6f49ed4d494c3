output "metric_types" {
  description = "The log-based KPI metrics, by name."
  value       = { for name, metric in google_logging_metric.kpi : name => "logging.googleapis.com/user/${metric.name}" }
}

output "alert_policies" {
  value = {
    usage       = google_monitoring_alert_policy.high_usage.name
    errors      = google_monitoring_alert_policy.high_error_rate.name
    cache       = google_monitoring_alert_policy.low_cache_hit_rate.name
    slo_fast    = google_monitoring_alert_policy.latency_burn_fast.name
    slo_slow    = google_monitoring_alert_policy.latency_burn_slow.name
    dashboard   = google_monitoring_dashboard.kpis.id
    latency_slo = google_monitoring_slo.latency.name
  }
}
