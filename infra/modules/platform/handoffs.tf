# Hand-offs to a person: chat and stream announce each one on this topic; the support team's
# tools (a helpdesk bridge, a pager) read it through their own pull subscription.

resource "google_pubsub_topic" "handoffs" {
  # checkov:skip=CKV_GCP_83:messages hold a conversation id, a pseudonym and a reason, never user text; Google-managed keys
  project                    = var.project_id
  name                       = "ngx-handoffs"
  labels                     = { app = "ngx", env = var.environment }
  message_retention_duration = "86400s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_subscription" "handoffs_support" {
  expiration_policy {
    ttl = "" # never expires, however quiet
  }
  project                    = var.project_id
  name                       = "ngx-handoffs-support"
  topic                      = google_pubsub_topic.handoffs.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  labels                     = { app = "ngx", env = var.environment }
}

resource "google_pubsub_topic_iam_member" "handoffs_publisher" {
  for_each = toset(["chat", "stream"])
  project  = var.project_id
  topic    = google_pubsub_topic.handoffs.name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${module.service[each.key].service_account_email}"
}

# Support staff read the announcements; they answer through the handoffs-scoped routes.
resource "google_pubsub_subscription_iam_member" "handoffs_support" {
  for_each     = toset(var.support_members)
  project      = var.project_id
  subscription = google_pubsub_subscription.handoffs_support.name
  role         = "roles/pubsub.subscriber"
  member       = each.value
}
