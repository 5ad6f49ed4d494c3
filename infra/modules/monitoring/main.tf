# The product's KPIs as log-based metrics read from the one structured "llm call" log line each model
# call writes (see shared/llm/client.py), the alerts and the latency SLO on them, and the dashboard.
# Nothing exports metrics from inside the functions: nothing to lose when Cloud Run throttles the CPU.

locals {
  llm_calls = "resource.type=\"cloud_run_revision\" AND jsonPayload.logger=\"vertex_ai.client\" AND jsonPayload.message=\"llm call\""

  # Name → (filter, value extractor, unit). Counters have no extractor; distributions record a value.
  metrics = {
    "vertex_ai.client.latency"      = { filter = local.llm_calls, value = "jsonPayload.latency_ms", unit = "ms" }
    "vertex_ai.client.tokens"       = { filter = local.llm_calls, value = "jsonPayload.tokens", unit = "1" }
    "vertex_ai.client.cost"         = { filter = local.llm_calls, value = "jsonPayload.cost_usd", unit = "{USD}" }
    "vertex_ai.client.errors"       = { filter = "${local.llm_calls} AND jsonPayload.error_kind=\"service\"", value = null, unit = "1" }
    "vertex_ai.client.refusals"     = { filter = "${local.llm_calls} AND jsonPayload.error_kind=(\"client\" OR \"refused\")", value = null, unit = "1" }
    "vertex_ai.client.cache_hits"   = { filter = "${local.llm_calls} AND jsonPayload.cache_hit=true", value = null, unit = "1" }
    "vertex_ai.client.cache_misses" = { filter = "${local.llm_calls} AND jsonPayload.cache=\"miss\"", value = null, unit = "1" }
  }

  # PromQL names of the metrics above (logging.googleapis.com/user/a.b → logging_googleapis_com:user_a_b).
  promql = { for name in keys(local.metrics) : name => "logging_googleapis_com:user_${replace(name, ".", "_")}" }

  calls_per_s = "sum(rate(${local.promql["vertex_ai.client.latency"]}_count[5m]))"
  # 5-minute rates: log-based metrics are written once a minute, so a 1-minute range may hold one
  # point and give no rate at all.
  tokens_per_s = "sum(rate(${local.promql["vertex_ai.client.tokens"]}_sum[5m]))"
  errors_per_s = "sum(rate(${local.promql["vertex_ai.client.errors"]}[5m]))"
  hits_per_s   = "sum(rate(${local.promql["vertex_ai.client.cache_hits"]}[30m]))"
  misses_per_s = "sum(rate(${local.promql["vertex_ai.client.cache_misses"]}[30m]))"
}

resource "google_logging_metric" "kpi" {
  for_each = local.metrics
  project  = var.project_id
  name     = each.key
  filter   = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit         = each.value.unit
    display_name = each.key

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "Cloud Run service"
    }

    labels {
      key         = "model"
      value_type  = "STRING"
      description = "Model that answered (or was tried last)"
    }

    labels {
      key         = "error_type"
      value_type  = "STRING"
      description = "Error code of a failed call"
    }
  }

  label_extractors = {
    service    = "EXTRACT(resource.labels.service_name)"
    model      = "EXTRACT(jsonPayload.model)"
    error_type = "EXTRACT(jsonPayload.error_type)"
  }

  value_extractor = each.value.value == null ? null : "EXTRACT(${each.value.value})"

  dynamic "bucket_options" {
    for_each = each.value.value == null ? [] : [each.value.unit]
    content {
      exponential_buckets {
        num_finite_buckets = 64
        growth_factor      = 1.25
        scale              = bucket_options.value == "{USD}" ? 0.000001 : 1
      }
    }
  }
}

# The agent's metrics, from the "tool call" line each tool call writes (shared/agent/runner.py)
# and the "agent escalation" line of each answer routed to the quality tier (shared/agent/loop.py).
locals {
  agent_metrics = {
    "agent.tool_calls" = {
      filter = "resource.type=\"cloud_run_revision\" AND jsonPayload.logger=\"agent.tools\" AND jsonPayload.message=\"tool call\""
      labels = { tool = "jsonPayload.tool", status = "jsonPayload.status" }
    }
    "agent.escalations" = {
      filter = "resource.type=\"cloud_run_revision\" AND jsonPayload.logger=\"agent.routing\" AND jsonPayload.message=\"agent escalation\""
      labels = { reason = "jsonPayload.reason", from_model = "jsonPayload.from_model" }
    }
  }
}

resource "google_logging_metric" "agent" {
  for_each = local.agent_metrics
  project  = var.project_id
  name     = each.key
  filter   = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = each.key

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "Cloud Run service"
    }

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key        = labels.key
        value_type = "STRING"
      }
    }
  }

  label_extractors = merge(
    { service = "EXTRACT(resource.labels.service_name)" },
    { for label, field in each.value.labels : label => "EXTRACT(${field})" },
  )
}

# The KPI alerts: PromQL over the log-based metrics above, each linked to its runbook.
locals {
  kpi_alerts = {
    VertexAIHighUsage = {
      condition  = "Tokens above ${var.usage_tokens_per_minute}/min for ${var.usage_duration_s / 60} min"
      query      = "${local.tokens_per_s} * 60 > ${var.usage_tokens_per_minute}"
      duration_s = var.usage_duration_s
      subject    = "Vertex AI token usage is high"
    }
    VertexAIHighErrorRate = {
      condition  = "Failed calls above ${var.error_ratio * 100}% for ${var.error_duration_s / 60} min"
      query      = "${local.errors_per_s} / ${local.calls_per_s} > ${var.error_ratio}"
      duration_s = var.error_duration_s
      subject    = "Vertex AI calls are failing"
    }
    VertexAILowCacheHitRate = {
      condition  = "Cache hit rate below ${var.cache_hit_ratio * 100}% for ${var.cache_duration_s / 60} min"
      query      = "${local.hits_per_s} / (${local.hits_per_s} + ${local.misses_per_s}) < ${var.cache_hit_ratio}"
      duration_s = var.cache_duration_s
      subject    = "The response cache is missing"
    }
  }
}

resource "google_monitoring_alert_policy" "kpi" {
  for_each              = local.kpi_alerts
  project               = var.project_id
  display_name          = "${each.key} (${var.environment})"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = { app = "ngx", env = var.environment, alert = lower(each.key) }

  conditions {
    display_name = each.value.condition
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = "${each.value.duration_s}s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    subject   = "${each.value.subject} in ${var.environment}"
    content   = "See docs/operations.md#${lower(each.key)}."
    mime_type = "text/markdown"
  }

  depends_on = [google_logging_metric.kpi]
}

# The latency SLO: var.latency_goal of model calls within var.latency_threshold_ms over 28 days.
resource "google_monitoring_custom_service" "api" {
  project      = var.project_id
  service_id   = "ngx-api-${var.environment}"
  display_name = "NGX Agent Functions API (${var.environment})"
}

resource "google_monitoring_slo" "latency" {
  project             = var.project_id
  service             = google_monitoring_custom_service.api.service_id
  slo_id              = "llm-latency"
  display_name        = "P${var.latency_goal * 100} model call latency < ${var.latency_threshold_ms} ms"
  goal                = var.latency_goal
  rolling_period_days = 28

  request_based_sli {
    distribution_cut {
      distribution_filter = "metric.type=\"logging.googleapis.com/user/vertex_ai.client.latency\" resource.type=\"cloud_run_revision\""
      range {
        min = 0
        max = var.latency_threshold_ms
      }
    }
  }

  depends_on = [google_logging_metric.kpi]
}

# Multi-window burn-rate alerts (the SRE workbook's pair): fast burn pages, slow burn tickets.
locals {
  burn_alerts = {
    LatencySLOFastBurn = { window = "3600s", rate = 14.4, condition = "Burning the 28-day latency budget 14.4× too fast (1 h window)" }
    LatencySLOSlowBurn = { window = "21600s", rate = 6, condition = "Burning the 28-day latency budget 6× too fast (6 h window)" }
  }
}

resource "google_monitoring_alert_policy" "latency_burn" {
  for_each              = local.burn_alerts
  project               = var.project_id
  display_name          = "${each.key} (${var.environment})"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = { app = "ngx", env = var.environment, alert = lower(each.key) }

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter          = "select_slo_burn_rate(\"${google_monitoring_slo.latency.name}\", \"${each.value.window}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.rate
      duration        = "0s"
    }
  }

  documentation {
    subject   = "${each.value.condition} in ${var.environment}"
    content   = "See docs/operations.md#${lower(each.key)}."
    mime_type = "text/markdown"
  }
}

# Availability SLOs, one per public service: the share of its requests that did not fail (5xx),
# with the SRE workbook's multi-window burn-rate alerts (a long window to be sure, a short one to
# stop firing soon after the burn ends): 14.4× over 1 h and 5 min pages, 6× over 6 h and 30 min.
resource "google_monitoring_slo" "availability" {
  for_each            = toset(var.public_services)
  project             = var.project_id
  service             = google_monitoring_custom_service.api.service_id
  slo_id              = "${each.value}-availability"
  display_name        = "${each.value}: ${var.availability_goal * 100}% of requests without a 5xx"
  goal                = var.availability_goal
  rolling_period_days = 28

  request_based_sli {
    good_total_ratio {
      total_service_filter = "metric.type=\"run.googleapis.com/request_count\" resource.type=\"cloud_run_revision\" resource.label.\"service_name\"=\"${each.value}\""
      bad_service_filter   = "metric.type=\"run.googleapis.com/request_count\" resource.type=\"cloud_run_revision\" resource.label.\"service_name\"=\"${each.value}\" metric.label.\"response_code_class\"=\"5xx\""
    }
  }
}

locals {
  availability_windows = {
    FastBurn = { long = "3600s", short = "300s", rate = 14.4, pace = "14.4× too fast (1 h and 5 min)" }
    SlowBurn = { long = "21600s", short = "1800s", rate = 6, pace = "6× too fast (6 h and 30 min)" }
  }
  availability_alerts = merge([
    for service in var.public_services : {
      for name, window in local.availability_windows : "AvailabilitySLO${name}:${service}" => merge(window, { service = service })
    }
  ]...)
}

resource "google_monitoring_alert_policy" "availability_burn" {
  for_each              = local.availability_alerts
  project               = var.project_id
  display_name          = "${split(":", each.key)[0]} ${each.value.service} (${var.environment})"
  combiner              = "AND"
  notification_channels = var.notification_channels
  user_labels           = { app = "ngx", env = var.environment, alert = lower(split(":", each.key)[0]) }

  dynamic "conditions" {
    for_each = [each.value.long, each.value.short]
    content {
      display_name = "${each.value.service} burns its availability budget ${each.value.pace}, window ${conditions.value}"
      condition_threshold {
        filter          = "select_slo_burn_rate(\"${google_monitoring_slo.availability[each.value.service].name}\", \"${conditions.value}\")"
        comparison      = "COMPARISON_GT"
        threshold_value = each.value.rate
        duration        = "0s"
      }
    }
  }

  documentation {
    subject   = "${each.value.service} burns its availability budget ${each.value.pace} in ${var.environment}"
    content   = "See docs/operations.md#${lower(split(":", each.key)[0])}."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_dashboard" "kpis" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "NGX Agent Functions (${var.environment})"
    mosaicLayout = {
      columns = 12
      tiles = [for index, tile in local.tiles : {
        xPos   = (index % 2) * 6
        yPos   = floor(index / 2) * 4
        width  = 6
        height = 4
        widget = {
          title = tile.title
          xyChart = {
            dataSets = [for query in tile.queries : {
              timeSeriesQuery = { prometheusQuery = query }
              plotType        = "LINE"
            }]
          }
        }
      }]
    }
  })
}

locals {
  run_filter = join("|", var.services)
  tiles = [
    { title = "Model calls per second", queries = ["${local.calls_per_s}"] },
    {
      title = "Model call latency (ms): p50, p95, p99",
      queries = [for q in ["0.5", "0.95", "0.99"] :
      "histogram_quantile(${q}, sum by (le) (rate(${local.promql["vertex_ai.client.latency"]}_bucket[5m])))"]
    },
    {
      title = "Request latency by service (ms): p50, p95, p99",
      queries = [for q in ["0.5", "0.95", "0.99"] :
      "histogram_quantile(${q}, sum by (le, service_name) (rate(run_googleapis_com:request_latencies_bucket{monitored_resource=\"cloud_run_revision\",service_name=~\"${local.run_filter}\"}[5m])))"]
    },
    {
      title = "4xx and 5xx per second by service",
      queries = [for class in ["4xx", "5xx"] :
      "sum by (service_name) (rate(run_googleapis_com:request_count{monitored_resource=\"cloud_run_revision\",service_name=~\"${local.run_filter}\",response_code_class=\"${class}\"}[5m]))"]
    },
    { title = "Cache hit rate", queries = ["${local.hits_per_s} / (${local.hits_per_s} + ${local.misses_per_s})"] },
    { title = "Errors by type (per second)", queries = ["sum by (error_type) (rate(${local.promql["vertex_ai.client.errors"]}[5m]))"] },
    { title = "CPU utilisation p95 by service", queries = ["histogram_quantile(0.95, sum by (le, service_name) (rate(run_googleapis_com:container_cpu_utilizations_bucket{monitored_resource=\"cloud_run_revision\",service_name=~\"${local.run_filter}\"}[5m])))"] },
    { title = "Memory utilisation p95 by service", queries = ["histogram_quantile(0.95, sum by (le, service_name) (rate(run_googleapis_com:container_memory_utilizations_bucket{monitored_resource=\"cloud_run_revision\",service_name=~\"${local.run_filter}\"}[5m])))"] },
    { title = "Estimated model cost (USD per hour)", queries = ["sum by (model) (rate(${local.promql["vertex_ai.client.cost"]}_sum[1h])) * 3600"] },
    { title = "Tokens per minute", queries = ["${local.tokens_per_s} * 60"] },
    { title = "Tool calls per second by tool and status", queries = ["sum by (tool, status) (rate(logging_googleapis_com:user_agent_tool_calls[5m]))"] },
    { title = "Escalations to the quality tier per minute by reason", queries = ["sum by (reason) (rate(logging_googleapis_com:user_agent_escalations[5m])) * 60"] },
    # Business metrics: one gauge point per day, written by the reports function.
    { title = "Resolution and deflection rate (daily)", queries = ["custom_googleapis_com:ngx_business_resolution_rate", "custom_googleapis_com:ngx_business_deflection_rate"] },
    { title = "CSAT, mean rating 1-5 (daily)", queries = ["custom_googleapis_com:ngx_business_csat"] },
    { title = "Conversations started (daily)", queries = ["custom_googleapis_com:ngx_business_conversations"] },
  ]
}
