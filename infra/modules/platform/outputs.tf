output "service_urls" {
  description = "Each function's Cloud Run URL, by function name."
  value       = { for name, service in module.service : name => service.uri }
}

output "service_accounts" {
  description = "Each function's service account, plus the scheduler's and the deployer's."
  value = merge(
    { for name, service in module.service : name => service.service_account_email },
    { scheduler = google_service_account.scheduler.email, deployer = google_service_account.deployer.email },
  )
}

output "image_repository" {
  description = "The Artifact Registry path the images are pushed to."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "backup_bucket" {
  description = "The bucket of the logical Firestore backups."
  value       = google_storage_bucket.backups.name
}

output "memorystore_instance" {
  description = "The Memorystore instance's full name."
  value       = module.cache.instance
}

output "monitoring" {
  description = "Alert policies, the SLO and the dashboard, by name."
  value       = module.monitoring.alert_policies
}

output "loadtest" {
  description = "The load test job and its results bucket, when the environment runs it."
  value       = var.loadtest ? { job = module.loadtest[0].job, results_bucket = module.loadtest[0].results_bucket } : null
}
