// Package oci owns the read-only, pull-side view of OCI/Docker registries
// that preheating needs: parsing image references, resolving a tag or digest
// through an image index (OCI index, Docker manifest list) to the manifest of
// one platform, listing that manifest's config and layer blobs, and the
// registry's authentication (anonymous, the bearer-token challenge, Basic
// credentials). Every read is bounded in size and time; a manifest named by
// digest is checked against it.
//
// It does not fetch blob bodies (the seed does, by digest, like the registry
// mirror's pulls), does not push, and knows nothing of tasks, peers or the
// tracker.
package oci
