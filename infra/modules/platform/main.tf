# One environment of NGX Agent Functions: network, data stores, the five Cloud Run services with an
# identity each, the scheduler and the Eventarc triggers that drive the private three, the
# retrieval corpus's buckets, images, backups and monitoring.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  apis = [
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "discoveryengine.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "logging.googleapis.com",
    "memorystore.googleapis.com",
    "monitoring.googleapis.com",
    "networkconnectivity.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
  ]

  # A Cloud Run URL is known before the service exists; the private functions check it as the
  # OIDC audience, so it goes into their environment without a dependency cycle.
  url = { for name in keys(local.functions) : name => "https://ngx-${replace(name, "_", "-")}-${data.google_project.this.number}.${var.region}.run.app" }

  scheduler_member = "serviceAccount:${google_service_account.scheduler.email}"
  # Who may invoke each private function: its driver, and operators where they act by hand.
  invokers = {
    cache_maintenance = [local.scheduler_member]
    backup            = concat([local.scheduler_member], var.operator_members)
    ingest            = concat(["serviceAccount:${google_service_account.eventarc.email}"], var.operator_members)
    worker            = ["serviceAccount:${google_service_account.pubsub_push.email}"]
    reports           = concat([local.scheduler_member], var.operator_members)
  }
  operator_emails = [for m in var.operator_members : split(":", m)[1]]

  common_env = {
    NGX_ENVIRONMENT     = var.environment
    NGX_PROJECT_ID      = var.project_id
    NGX_VERTEX_LOCATION = var.region
    NGX_REDIS_URL       = module.cache.redis_url
    NGX_REDIS_IAM_AUTH  = tostring(var.memorystore_iam_auth)
  }

  # The instance's CA (PEM) for every function that reaches Memorystore, when TLS is on.
  redis_secret_env = var.memorystore_tls ? { NGX_REDIS_TLS_CA = google_secret_manager_secret.redis_ca[0].secret_id } : {}

  # Where data exports are written (by the worker) and signed for download (by chat).
  export_sink = "gs://${google_storage_bucket.exports.name}/exports"

  # Where the lexical (BM25) indexes of the corpus are published and read.
  index_sink = "gs://${google_storage_bucket.corpus_index.name}/lexical"

  # The vector backend's settings for every function that searches or writes the corpus.
  vector_env = var.vector_search == null ? {} : module.vector_search[0].settings

  api_env = merge(
    {
      NGX_CONVERSATION_RETENTION_DAYS = tostring(var.conversation_retention_days)
      NGX_CORS_ORIGINS                = jsonencode(var.cors_origins)
      NGX_CORPUS_INDEX_SINK           = local.index_sink
      NGX_EXPORT_SINK                 = local.export_sink
      NGX_JOBS_TOPIC                  = google_pubsub_topic.jobs.name
      NGX_HANDOFFS_TOPIC              = google_pubsub_topic.handoffs.name
    },
    local.vector_env,
    var.retrieval_rerank ? { NGX_RETRIEVAL_RERANK = "true" } : {},
    var.tools_file == null ? {} : { NGX_TOOLS_FILE = var.tools_file },
  )

  api_roles = concat(
    ["roles/aiplatform.user", "roles/datastore.user", "roles/cloudtrace.agent"],
    var.retrieval_rerank ? [google_project_iam_custom_role.ranking[0].id] : [],
  )

  invoked_env = {
    NGX_SCHEDULER_SERVICE_ACCOUNT = google_service_account.scheduler.email
  }

  # Per function: public or not, its own project roles (least privilege) and its settings.
  functions = {
    chat = {
      public = true
      roles  = local.api_roles
      env    = local.api_env
    }
    stream = {
      public = true
      roles  = local.api_roles
      # WebSocket sessions are asked to reconnect two minutes before the request timeout ends them.
      env = merge(local.api_env, {
        NGX_SESSION_MAX_S = tostring(max(60, var.services["stream"].timeout_s - 120))
      })
    }
    cache_maintenance = {
      public = false
      roles  = ["roles/datastore.user", google_project_iam_custom_role.cache_maintenance.id]
      env = {
        NGX_MEMORYSTORE_INSTANCE = module.cache.instance
      }
    }
    backup = {
      public = false
      roles  = concat(["roles/datastore.user"], var.vector_search == null ? [] : ["roles/aiplatform.user"]) # an erasure removes datapoints
      env = merge({
        NGX_BACKUP_SINK               = "gs://${google_storage_bucket.backups.name}/firestore"
        NGX_BACKUP_KEEP_DAYS          = tostring(var.backup_keep_days)
        NGX_OPERATOR_SERVICE_ACCOUNTS = jsonencode(local.operator_emails)
        NGX_CORPUS_INDEX_SINK         = local.index_sink # an erasure republishes the index
      }, local.vector_env)
    }
    reports = {
      public = false
      roles  = ["roles/datastore.user", "roles/monitoring.metricWriter"]
      env    = {}
    }
    worker = {
      public = false
      # aiplatform.user: a large upload's ingestion embeds its chunks
      roles = ["roles/datastore.user", "roles/cloudtrace.agent", "roles/aiplatform.user"]
      env = merge({
        NGX_PUSH_SERVICE_ACCOUNT = google_service_account.pubsub_push.email
        NGX_EXPORT_SINK          = local.export_sink
        NGX_JOB_MAX_ATTEMPTS     = tostring(local.job_max_attempts)
        NGX_INGEST_BUCKETS       = jsonencode([google_storage_bucket.corpus.name])
        NGX_CORPUS_INDEX_SINK    = local.index_sink
      }, local.vector_env)
    }
    ingest = {
      public = false
      roles  = ["roles/aiplatform.user", "roles/datastore.user"]
      env = merge({
        NGX_INGEST_BUCKETS            = jsonencode([google_storage_bucket.corpus.name])
        NGX_EVENT_SERVICE_ACCOUNT     = google_service_account.eventarc.email
        NGX_CORPUS_INDEX_SINK         = local.index_sink
        NGX_OPERATOR_SERVICE_ACCOUNTS = jsonencode(local.operator_emails)
        NGX_JOBS_TOPIC                = google_pubsub_topic.jobs.name # large uploads go to the worker
      }, local.vector_env)
    }
  }

  # Cloud Storage events that reach ingest: an object written or its metadata changed; an object
  # gone (the bucket is versioned: a deletion or overwrite archives the live version, and the
  # noncurrent version's final deletion follows 30 days later).
  corpus_events = {
    finalized = "google.cloud.storage.object.v1.finalized"
    metadata  = "google.cloud.storage.object.v1.metadataUpdated"
    archived  = "google.cloud.storage.object.v1.archived"
    deleted   = "google.cloud.storage.object.v1.deleted"
  }

  # Scheduled calls: function, schedule key, JSON body.
  jobs = {
    "cache-apply"   = { function = "cache_maintenance", schedule = "cache_apply", body = { action = "apply" } }
    "backup-run"    = { function = "backup", schedule = "backup_run", body = { action = "run" } }
    "backup-prune"  = { function = "backup", schedule = "backup_prune", body = { action = "prune" } }
    "backup-verify" = { function = "backup", schedule = "backup_verify", body = { action = "verify" } }
    "business-day"  = { function = "reports", schedule = "business_metrics", body = { action = "business_metrics" } }
  }
}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# --- network: the services reach Memorystore through direct VPC egress ---------------------------

resource "google_compute_network" "vpc" {
  project                 = var.project_id
  name                    = "ngx-${var.environment}"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "services" {
  project                  = var.project_id
  name                     = "ngx-services-${var.environment}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing in this network accepts connections except the cache, from the services' subnet.
resource "google_compute_firewall" "cache_from_services" {
  project       = var.project_id
  name          = "ngx-${var.environment}-allow-cache"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = [var.subnet_cidr]

  allow {
    protocol = "tcp"
    ports    = ["6379", "11000-13047"]
  }

  log_config {
    metadata = "EXCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "deny_ingress" {
  project       = var.project_id
  name          = "ngx-${var.environment}-deny-ingress"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# --- data ----------------------------------------------------------------------------------------

module "cache" {
  source              = "../cache"
  project_id          = var.project_id
  region              = var.region
  environment         = var.environment
  network             = google_compute_network.vpc.id
  subnetwork          = google_compute_subnetwork.services.id
  node_type           = var.memorystore_node_type
  shard_count         = var.memorystore_shard_count
  deletion_protection = var.deletion_protection
  iam_auth            = var.memorystore_iam_auth
  tls                 = var.memorystore_tls
}

# The Memorystore CA's PEM, which the functions verify the server with. Its versions come from
# the instance (`gcloud memorystore instances get-certificate-authority`, docs/operations.md).
resource "google_secret_manager_secret" "redis_ca" {
  count     = var.memorystore_tls ? 1 : 0
  project   = var.project_id
  secret_id = "ngx-redis-ca-${var.environment}"
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# Memorystore IAM authentication: each function's identity may connect.
resource "google_project_iam_member" "memorystore_connect" {
  for_each = var.memorystore_iam_auth ? local.functions : {}
  project  = var.project_id
  role     = "roles/memorystore.dbConnectionUser"
  member   = "serviceAccount:${module.service[each.key].service_account_email}"
}

# How long request and model-call log lines are kept (the _Default bucket).
resource "google_logging_project_bucket_config" "default" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "_Default"
  retention_days = var.log_retention_days
}

module "firestore" {
  source                = "../firestore"
  project_id            = var.project_id
  location              = var.firestore_location
  backup_retention_days = var.firestore_backup_retention_days
  depends_on            = [google_project_service.apis]
}

# Logical backups (the backup function): private, versioned, old versions expire.
resource "google_storage_bucket" "backups" {
  project                     = var.project_id
  name                        = "${var.project_id}-ngx-backups-${var.environment}"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = { app = "ngx", env = var.environment }

  versioning {
    enabled = true
  }

  soft_delete_policy {
    retention_duration_seconds = 7 * 86400
  }

  # The backup function prunes by its own rules; these are the backstops.
  lifecycle_rule {
    condition {
      age = var.backup_keep_days + 60
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
}

# Who read or wrote a backup: Data Access audit logs (rather than legacy bucket access logs).
resource "google_project_iam_audit_config" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_READ"
  }

  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

resource "google_storage_bucket_iam_member" "backup_writer" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${module.service["backup"].service_account_email}"
}

# --- the retrieval corpus -------------------------------------------------------------------------

# Documents to retrieve from: an upload is ingested, a deletion removes its chunks (Eventarc →
# ingest). Custom metadata `visibility`, `tags` and `expires_at` travel with each object.
resource "google_storage_bucket" "corpus" {
  project                     = var.project_id
  name                        = "${var.project_id}-ngx-corpus-${var.environment}"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = { app = "ngx", env = var.environment }

  versioning {
    enabled = true # an overwritten or deleted document can be brought back
  }

  soft_delete_policy {
    retention_duration_seconds = 7 * 86400
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }
}

# The published lexical indexes (the ingest, backup and API functions' NGX_CORPUS_INDEX_SINK);
# a separate bucket, so writing an index never looks like a document upload.
resource "google_storage_bucket" "corpus_index" {
  # checkov:skip=CKV_GCP_78:derived data, rebuilt by the next ingestion; kept versions would hold an erased user's text
  project                     = var.project_id
  name                        = "${var.project_id}-ngx-corpus-index-${var.environment}"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # derived data: rebuilt by the next ingestion
  labels                      = { app = "ngx", env = var.environment }

  soft_delete_policy {
    retention_duration_seconds = 0 # an erased user's text must not linger in deleted indexes
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "corpus_reader" {
  for_each = toset(["ingest", "worker"]) # the worker ingests large uploads as jobs
  bucket   = google_storage_bucket.corpus.name
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${module.service[each.key].service_account_email}"
}

# Ingest, the worker (large uploads) and backup (an erasure) publish indexes; chat and stream read them.
resource "google_storage_bucket_iam_member" "index_writer" {
  for_each = toset(["ingest", "backup", "worker"])
  bucket   = google_storage_bucket.corpus_index.name
  role     = "roles/storage.objectAdmin"
  member   = "serviceAccount:${module.service[each.key].service_account_email}"
}

resource "google_storage_bucket_iam_member" "index_reader" {
  for_each = toset(["chat", "stream"])
  bucket   = google_storage_bucket.corpus_index.name
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${module.service[each.key].service_account_email}"
}

# Eventarc signs its deliveries as this account; it may invoke ingest, nothing else.
resource "google_service_account" "eventarc" {
  project      = var.project_id
  account_id   = "ngx-eventarc"
  display_name = "NGX Eventarc trigger (corpus uploads)"
}

resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.eventarc.email}"
}

# Cloud Storage publishes the bucket's events to Eventarc's Pub/Sub transport as its service agent.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_project_iam_member" "gcs_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_eventarc_trigger" "corpus" {
  for_each        = local.corpus_events
  project         = var.project_id
  name            = "ngx-corpus-${each.key}-${var.environment}"
  location        = var.region
  service_account = google_service_account.eventarc.email
  labels          = { app = "ngx", env = var.environment }

  matching_criteria {
    attribute = "type"
    value     = each.value
  }

  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.corpus.name
  }

  destination {
    cloud_run_service {
      service = module.service["ingest"].name
      region  = var.region
      path    = "/"
    }
  }

  depends_on = [google_project_iam_member.gcs_publisher, google_project_iam_member.eventarc_receiver]
}

module "vector_search" {
  source                       = "../vector_search"
  count                        = var.vector_search == null ? 0 : 1
  project_id                   = var.project_id
  region                       = var.region
  environment                  = var.environment
  shard_size                   = var.vector_search.shard_size
  leaf_nodes_to_search_percent = var.vector_search.leaf_nodes_to_search_percent
  min_replicas                 = var.vector_search.min_replicas
  max_replicas                 = var.vector_search.max_replicas
  depends_on                   = [google_project_service.apis]
}

# --- images --------------------------------------------------------------------------------------

resource "google_artifact_registry_repository" "images" {
  project                = var.project_id
  location               = var.region
  repository_id          = "ngx"
  format                 = "DOCKER"
  description            = "NGX Agent Functions images, tagged with the commit"
  cleanup_policy_dry_run = false
  labels                 = { app = "ngx", env = var.environment }

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.artifact_keep_count
    }
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "7776000s"
    }
  }

  depends_on = [google_project_service.apis]
}

# --- identities ----------------------------------------------------------------------------------

# Cache maintenance reads and tunes the Memorystore instance, nothing else there.
resource "google_project_iam_custom_role" "cache_maintenance" {
  project     = var.project_id
  role_id     = "ngxCacheMaintenance${title(var.environment)}"
  title       = "NGX cache maintenance (${var.environment})"
  description = "Read the Memorystore instance and change its engine configs."
  permissions = [
    "memorystore.instances.get",
    "memorystore.instances.update",
    "memorystore.operations.get",
  ]
}

# Re-ranking calls the ranking API: this one permission, nothing else of Discovery Engine.
resource "google_project_iam_custom_role" "ranking" {
  count       = var.retrieval_rerank ? 1 : 0
  project     = var.project_id
  role_id     = "ngxRanking${title(var.environment)}"
  title       = "NGX re-ranking (${var.environment})"
  description = "Rank retrieved passages through the ranking API."
  permissions = ["discoveryengine.rankingConfigs.rank"]
}

# Cloud Scheduler signs OIDC tokens as this account; it may invoke the private services only.
resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "ngx-scheduler"
  display_name = "NGX Cloud Scheduler invoker"
}

# Cloud Build deploys revisions and runs the canary as this account.
resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "ngx-deployer"
  display_name = "NGX Cloud Build deployer"
}

resource "google_project_iam_member" "deployer" {
  for_each = toset([
    "roles/run.developer",     # new revisions, traffic changes
    "roles/monitoring.viewer", # canary gates read metrics
    "roles/datastore.user",    # canary state, data migrations (agentctl migrate)
    "roles/logging.logWriter", # build logs
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_artifact_registry_repository_iam_member" "deployer" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.deployer.email}"
}

# Deploying a revision that runs as a function's account needs actAs on that account alone.
resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each           = module.service
  service_account_id = "projects/${var.project_id}/serviceAccounts/${each.value.service_account_email}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.deployer.email}"
}

# --- the five functions --------------------------------------------------------------------------

module "service" {
  source              = "../cloud_run_service"
  for_each            = local.functions
  project_id          = var.project_id
  region              = var.region
  environment         = var.environment
  name                = each.key
  image               = var.image
  network             = google_compute_network.vpc.id
  subnetwork          = google_compute_subnetwork.services.id
  public              = each.value.public
  invokers            = each.value.public ? [] : local.invokers[each.key]
  project_roles       = each.value.roles
  cpu                 = var.services[each.key].cpu
  memory              = var.services[each.key].memory
  concurrency         = var.services[each.key].concurrency
  min_instances       = var.services[each.key].min_instances
  max_instances       = var.services[each.key].max_instances
  timeout_s           = var.services[each.key].timeout_s
  session_affinity    = each.key == "stream" # a reconnecting WebSocket session returns to its instance
  deletion_protection = var.deletion_protection
  secret_env = merge(
    local.redis_secret_env,
    each.value.public ? var.tool_secret_env : {}, # the agent's tool credentials: chat and stream only
    lookup(var.secret_env, each.key, {}),
  )
  env = merge(
    local.common_env,
    each.value.public ? {} : merge(local.invoked_env, { NGX_INVOKER_AUDIENCE = local.url[each.key] }),
    each.value.env,
    lookup(var.extra_env, each.key, {}),
  )
  depends_on = [google_project_service.apis]
}

module "job" {
  source      = "../scheduler_job"
  for_each    = local.jobs
  project_id  = var.project_id
  region      = var.region
  name        = "ngx-${each.key}-${var.environment}"
  description = "POST ${jsonencode(each.value.body)} to ${each.value.function}"
  depends_on  = [module.service]
  schedule    = var.schedules[each.value.schedule]
  # The URL the function checks as its OIDC audience (the service's `uri` is the hash-style one).
  service_uri               = local.url[each.value.function]
  scheduler_service_account = google_service_account.scheduler.email
  body                      = each.value.body
}

# --- monitoring ----------------------------------------------------------------------------------

module "monitoring" {
  source                = "../monitoring"
  project_id            = var.project_id
  environment           = var.environment
  services              = [for service in module.service : service.name]
  public_services       = [for name, function in local.functions : module.service[name].name if function.public]
  notification_channels = var.notification_channels
  depends_on            = [google_project_service.apis]
}

# --- the periodic load test (staging) ------------------------------------------------------------

module "loadtest" {
  source                    = "../loadtest"
  count                     = var.loadtest ? 1 : 0
  project_id                = var.project_id
  region                    = var.region
  environment               = var.environment
  ops_image                 = replace(var.image, "/ngx-agent-functions:", "/ngx-ops:")
  chat_url                  = local.url["chat"]
  stream_url                = local.url["stream"]
  scheduler_service_account = google_service_account.scheduler.email
  deployer_service_account  = google_service_account.deployer.email
  notification_channels     = var.notification_channels
  depends_on                = [google_project_service.apis]
}
