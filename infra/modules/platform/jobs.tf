# The job queue: a topic the API publishes jobs to, a push subscription that delivers them to the
# worker with an OIDC token of its own identity, retries with backoff, and a dead-letter topic
# after job_max_attempts deliveries. Exports are written to their own bucket and kept a day.

locals {
  job_max_attempts = 5
  pubsub_agent     = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "jobs" {
  # checkov:skip=CKV_GCP_83:messages hold a job id and kind only, never user data; Google-managed keys
  project                    = var.project_id
  name                       = "ngx-jobs"
  labels                     = { app = "ngx", env = var.environment }
  message_retention_duration = "86400s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_topic" "jobs_dead" {
  # checkov:skip=CKV_GCP_83:dead letters are job messages: a job id and kind only; Google-managed keys
  project                    = var.project_id
  name                       = "ngx-jobs-dead"
  labels                     = { app = "ngx", env = var.environment }
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.apis]
}

# Pub/Sub signs its pushes as this account; it may invoke the worker, nothing else.
resource "google_service_account" "pubsub_push" {
  project      = var.project_id
  account_id   = "ngx-pubsub-push"
  display_name = "NGX Pub/Sub push (job queue)"
}

resource "google_pubsub_subscription" "jobs_push" {
  expiration_policy {
    ttl = "" # never expires, however quiet
  }
  project                    = var.project_id
  name                       = "ngx-jobs-push"
  topic                      = google_pubsub_topic.jobs.id
  ack_deadline_seconds       = 600 # an export of a large account takes minutes
  message_retention_duration = "86400s"
  labels                     = { app = "ngx", env = var.environment }

  push_config {
    push_endpoint = local.url["worker"]
    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = local.url["worker"]
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.jobs_dead.id
    max_delivery_attempts = local.job_max_attempts
  }
}

# Dead letters stay here for operators to read (and replay) for a week.
resource "google_pubsub_subscription" "jobs_dead" {
  expiration_policy {
    ttl = "" # never expires, however quiet
  }
  project                    = var.project_id
  name                       = "ngx-jobs-dead"
  topic                      = google_pubsub_topic.jobs_dead.id
  message_retention_duration = "604800s"
  labels                     = { app = "ngx", env = var.environment }
}

# Chat (exports) and ingest (large uploads) publish jobs; nothing else does.
resource "google_pubsub_topic_iam_member" "jobs_publisher" {
  for_each = toset(["chat", "ingest"])
  project  = var.project_id
  topic    = google_pubsub_topic.jobs.name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${module.service[each.key].service_account_email}"
}

# Pub/Sub's service agent forwards undeliverable messages: it publishes to the dead-letter topic
# and acknowledges them on the push subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.jobs_dead.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.jobs_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Pub/Sub mints the push identity's OIDC tokens as its service agent.
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_storage_bucket" "exports" {
  # checkov:skip=CKV_GCP_78:an export is a copy of a user's data for a day; versions would keep it longer
  project                     = var.project_id
  name                        = "${var.project_id}-ngx-exports-${var.environment}"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced" # downloads go through signed URLs only
  force_destroy               = true
  labels                      = { app = "ngx", env = var.environment }

  soft_delete_policy {
    retention_duration_seconds = 0 # an erased user's archive must not linger
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "Delete"
    }
  }
}

# The worker writes archives (and rewrites one on a redelivery); chat signs links to them and,
# erasing a user (DELETE /v1/me), deletes theirs (operators running agentctl users erase need the
# same on this bucket).
resource "google_storage_bucket_iam_member" "exports_writer" {
  bucket = google_storage_bucket.exports.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${module.service["worker"].service_account_email}"
}

resource "google_storage_bucket_iam_member" "exports_eraser" {
  for_each = toset(["chat"])
  bucket   = google_storage_bucket.exports.name
  role     = "roles/storage.objectUser"
  member   = "serviceAccount:${module.service[each.key].service_account_email}"
}

# Chat signs download links with its own identity through the IAM API (it holds no key).
resource "google_service_account_iam_member" "chat_signs_links" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${module.service["chat"].service_account_email}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${module.service["chat"].service_account_email}"
}
