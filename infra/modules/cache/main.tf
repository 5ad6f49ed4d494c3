# Memorystore for Valkey with Private Service Connect endpoints in the product's network, and the
# service connection policy that lets Memorystore create them.

resource "google_network_connectivity_service_connection_policy" "memorystore" {
  project       = var.project_id
  name          = "ngx-memorystore-${var.environment}"
  location      = var.region
  service_class = "gcp-memorystore"
  network       = var.network
  description   = "Lets Memorystore create its PSC endpoints in the NGX subnet."

  psc_config {
    subnetworks = [var.subnetwork]
  }
}

resource "google_memorystore_instance" "cache" {
  project                     = var.project_id
  instance_id                 = "ngx-cache-${var.environment}"
  location                    = var.region
  shard_count                 = var.shard_count
  mode                        = "CLUSTER_DISABLED"
  node_type                   = var.node_type
  engine_version              = "VALKEY_8_0"
  authorization_mode          = var.iam_auth ? "IAM_AUTH" : "AUTH_DISABLED"
  transit_encryption_mode     = var.tls ? "SERVER_AUTHENTICATION" : "TRANSIT_ENCRYPTION_DISABLED"
  deletion_protection_enabled = var.deletion_protection
  engine_configs = {
    # Every key the product writes has a TTL; cache maintenance may tune this at run time.
    "maxmemory-policy" = "volatile-lfu"
  }

  desired_auto_created_endpoints {
    network    = var.network
    project_id = var.project_id
  }

  persistence_config {
    mode = "DISABLED"
  }

  lifecycle {
    # Cache maintenance owns the eviction policy once the instance exists.
    ignore_changes = [engine_configs]
  }

  depends_on = [google_network_connectivity_service_connection_policy.memorystore]
}
