# A Cloud Scheduler job that POSTs a JSON action to a private Cloud Run service with an OIDC
# token of the scheduler's own service account (the function checks it again in code).

resource "google_cloud_scheduler_job" "this" {
  project          = var.project_id
  region           = var.region
  name             = var.name
  description      = var.description
  schedule         = var.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = var.attempt_deadline

  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
  }

  http_target {
    http_method = "POST"
    uri         = "${var.service_uri}/"
    body        = base64encode(jsonencode(var.body))
    headers     = { "Content-Type" = "application/json" }

    oidc_token {
      service_account_email = var.scheduler_service_account
      audience              = var.service_uri
    }
  }
}
