// Package ui owns the tracker's web dashboard: the static page, style sheet
// and script (plain JavaScript drawing SVG, no build step), embedded in the
// binary, and the handler that serves them at / and /ui/ with a strict
// Content-Security-Policy.
//
// The page holds no data: it polls the tracker's JSON API (/api/v1/overview,
// /api/v1/tasks, /api/v1/tasks/{id}, /api/v1/tasks/{id}/edges) from the
// browser, through the same authorization as every other client (loopback
// gets read; elsewhere the user pastes a token, which the page keeps in
// sessionStorage and sends as a bearer token). So the static files are
// served without auth.
//
// It must not compute anything about tasks or peers itself (package tracker
// serves the data), nor reference any other host: no CDN, fonts or
// analytics; a test scans the embedded files for outside links.
package ui
