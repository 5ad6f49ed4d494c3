# The periodic load test: a Cloud Run Job running `agentctl loadtest` from the ops image against
# the environment's chat and stream services, weekly from Cloud Scheduler and after each staging
# deploy from Cloud Build. Results (summary, CSV, chart) go to a private bucket; the job's verdict
# line becomes a log-based metric with an alert when a run misses its SLO.

locals {
  name = "ngx-loadtest-${var.environment}"
  args = [
    "loadtest", "--scenario", var.scenario,
    "--url", var.chat_url, "--stream-url", var.stream_url,
    "--out", "/tmp/loadtest", "--upload", "gs://${google_storage_bucket.results.name}/runs",
  ]
}

resource "google_service_account" "job" {
  project      = var.project_id
  account_id   = local.name
  display_name = "NGX load test job (${var.environment})"
}

resource "google_storage_bucket" "results" {
  project                     = var.project_id
  name                        = "${var.project_id}-ngx-loadtests-${var.environment}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = { app = "ngx", env = var.environment }

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.results_keep_days
    }
    action {
      type = "Delete"
    }
  }
}

# Writes new result objects only: it can neither read nor replace earlier runs.
resource "google_storage_bucket_iam_member" "job_writes_results" {
  bucket = google_storage_bucket.results.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.job.email}"
}

# The API key the load test presents (`agentctl keys create --name loadtest --tier premium`).
resource "google_secret_manager_secret" "api_key" {
  project   = var.project_id
  secret_id = "${local.name}-api-key"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "job_reads_api_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.api_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

resource "google_cloud_run_v2_job" "loadtest" {
  project             = var.project_id
  name                = local.name
  location            = var.region
  deletion_protection = false
  labels              = { app = "ngx", env = var.environment }

  template {
    task_count = 1
    template {
      service_account = google_service_account.job.email
      timeout         = "${var.timeout_s}s"
      max_retries     = 0

      containers {
        image = var.ops_image
        args  = local.args

        resources {
          limits = { cpu = "2", memory = "2Gi" }
        }

        env {
          name  = "NGX_ENVIRONMENT"
          value = var.environment
        }

        env {
          name  = "NGX_PROJECT_ID"
          value = var.project_id
        }

        env {
          name = "NGX_LOADTEST_API_KEY"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.api_key.secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }

  lifecycle {
    # Cloud Build moves the job to each release's ops image.
    ignore_changes = [template[0].template[0].containers[0].image, client, client_version]
  }
}

# Who may start it: the scheduler (weekly) and the deployer (after each staging deploy).
resource "google_cloud_run_v2_job_iam_member" "runners" {
  for_each = { scheduler = var.scheduler_service_account, deployer = var.deployer_service_account }
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.loadtest.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value}"
}

resource "google_cloud_scheduler_job" "weekly" {
  project          = var.project_id
  region           = var.region
  name             = "${local.name}-weekly"
  description      = "Runs the ${var.scenario} load test against ${var.environment}."
  schedule         = var.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "60s"

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.loadtest.name}:run"

    oauth_token {
      service_account_email = var.scheduler_service_account
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }
}

# The verdict line each run writes ("loadtest verdict"), as a metric by outcome.
resource "google_logging_metric" "verdicts" {
  project = var.project_id
  name    = "ngx.loadtest.verdicts"
  filter  = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${local.name}\" AND jsonPayload.message=\"loadtest verdict\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Load test verdicts"

    labels {
      key         = "slo_met"
      value_type  = "STRING"
      description = "true when the run met its scenario's SLO"
    }
  }

  label_extractors = {
    slo_met = "EXTRACT(jsonPayload.slo_met)"
  }
}

resource "google_monitoring_alert_policy" "failed" {
  project               = var.project_id
  display_name          = "LoadTestFailed (${var.environment})"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = { app = "ngx", env = var.environment, alert = "loadtestfailed" }

  conditions {
    display_name = "a load test run missed its SLO"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.verdicts.name}\" AND metric.labels.slo_met=\"false\" AND resource.type=\"cloud_run_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  documentation {
    subject   = "A load test run missed its SLO in ${var.environment}"
    content   = "See docs/operations.md#loadtestfailed. Results: gs://${google_storage_bucket.results.name}/runs/"
    mime_type = "text/markdown"
  }
}

# Cloud Build points the job at each release's image: it must act as the job's identity.
resource "google_service_account_iam_member" "deployer_acts_as_job" {
  service_account_id = google_service_account.job.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${var.deployer_service_account}"
}
