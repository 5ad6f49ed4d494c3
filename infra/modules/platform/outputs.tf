output "service_urls" {
  value = { for name, service in module.service : name => service.uri }
}

output "service_accounts" {
  value = merge(
    { for name, service in module.service : name => service.service_account_email },
    { scheduler = google_service_account.scheduler.email, deployer = google_service_account.deployer.email },
  )
}

output "image_repository" {
  value = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "backup_bucket" { value = google_storage_bucket.backups.name }
output "memorystore_instance" { value = module.cache.instance }
output "monitoring" { value = module.monitoring.alert_policies }
