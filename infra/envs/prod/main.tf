# Production: warm instances for the public API, deletion protection, longer backup retention.
# terraform init -backend-config="bucket=<state bucket>" && terraform apply -var project_id=<project>

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50"
    }
  }
  backend "gcs" {
    prefix = "ngx/prod"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

module "platform" {
  source                = "../../modules/platform"
  project_id            = var.project_id
  region                = var.region
  environment           = "prod"
  firestore_location    = var.firestore_location
  image                 = var.image
  operator_members      = var.operator_members
  notification_channels = var.notification_channels
  cors_origins          = var.cors_origins
  log_retention_days    = var.log_retention_days
  deletion_protection   = true
  backup_keep_days      = 30

  firestore_backup_retention_days = 30
  # Direct VPC egress takes about two addresses per instance: room for 2 × 100 of each API service.
  subnet_cidr           = "10.8.0.0/20"
  memorystore_node_type = "HIGHMEM_MEDIUM"

  services = {
    chat              = { cpu = "2", memory = "1Gi", concurrency = 80, min_instances = 2, max_instances = 100, timeout_s = 300 }
    stream            = { cpu = "2", memory = "1Gi", concurrency = 250, min_instances = 2, max_instances = 100, timeout_s = 3600 }
    cache_maintenance = { cpu = "1", memory = "512Mi", concurrency = 1, min_instances = 0, max_instances = 1, timeout_s = 900 }
    backup            = { cpu = "1", memory = "1Gi", concurrency = 1, min_instances = 0, max_instances = 1, timeout_s = 3600 }
    ingest            = { cpu = "1", memory = "1Gi", concurrency = 4, min_instances = 0, max_instances = 3, timeout_s = 600 }
    worker            = { cpu = "1", memory = "1Gi", concurrency = 4, min_instances = 0, max_instances = 5, timeout_s = 600 }
    reports           = { cpu = "1", memory = "512Mi", concurrency = 1, min_instances = 0, max_instances = 1, timeout_s = 900 }
  }
}

output "service_urls" { value = module.platform.service_urls }
output "service_accounts" { value = module.platform.service_accounts }
output "image_repository" { value = module.platform.image_repository }
