# One Cloud Run v2 service running one of the four functions, with its own service account.
# Traffic belongs to `agentctl canary`: Terraform sets it at creation and ignores it afterwards,
# as it ignores the image that Cloud Build deploys.

locals {
  # Terraform and Cloud Run spell the function with hyphens (cache-maintenance); the code, with
  # underscores (FUNCTION_TARGET=cache_maintenance).
  service_name = "ngx-${replace(var.name, "_", "-")}"
  invokers     = var.public ? ["allUsers"] : var.invokers
}

resource "google_service_account" "this" {
  project      = var.project_id
  account_id   = local.service_name
  display_name = "NGX ${var.name} function"
}

resource "google_cloud_run_v2_service" "this" {
  project             = var.project_id
  name                = local.service_name
  location            = var.region
  ingress             = var.public ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection
  labels              = { app = "ngx", function = var.name, env = var.environment }

  template {
    service_account                  = google_service_account.this.email
    max_instance_request_concurrency = var.concurrency
    timeout                          = "${var.timeout_s}s"
    session_affinity                 = var.session_affinity

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = var.network
        subnetwork = var.subnetwork
      }
    }

    containers {
      image = var.image

      resources {
        limits            = { cpu = var.cpu, memory = var.memory }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "FUNCTION_TARGET"
        value = var.name
      }

      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 1
        failure_threshold = 30
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds = 30
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    ignore_changes = [traffic, client, client_version, template[0].containers[0].image]
  }
}

# Who may invoke: everyone for the public API (auth is in the app), else only the listed identities.
resource "google_cloud_run_v2_service_iam_member" "invokers" {
  # Keyed by position: members may be emails not yet known when the plan is made.
  for_each = { for i, member in local.invokers : tostring(i) => member }
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_project_iam_member" "roles" {
  for_each = { for i, role in var.project_roles : tostring(i) => role }
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.this.email}"
}

resource "google_secret_manager_secret_iam_member" "secrets" {
  for_each  = var.secret_env
  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.this.email}"
}
