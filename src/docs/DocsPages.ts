/**
 * The Swagger UI and ReDoc pages. Their scripts and styles come from /docs/assets (npm packages
 * installed with the server), and every URL is relative, so the pages work offline and behind a
 * path prefix; nothing they load fetches from elsewhere (see DocsHttp for ReDoc's logo).
 */
const page = (title: string, head: string, body: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
${head}
</head>
<body>
${body}
</body>
</html>
`

export const swaggerUiPage = page(
  "Basalt API: Swagger UI",
  `<link rel="stylesheet" href="./docs/assets/swagger-ui.css">
<style>
  /* The OAuth2 password flow of "Authorize" takes an email and a password; Basalt has no OAuth2
     clients, so the client id and secret, and where to send them, are hidden. */
  .swagger-ui .auth-container .wrapper:has(> label[for="password_type"]),
  .swagger-ui .auth-container .wrapper:has(> label[for^="client_id_"]),
  .swagger-ui .auth-container .wrapper:has(> label[for^="client_secret_"]) { display: none; }
</style>`,
  `<div id="swagger-ui"></div>
<script src="./docs/assets/swagger-ui-bundle.js"></script>
<script>
  window.ui = SwaggerUIBundle({
    url: "./openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    tryItOutEnabled: true,
    validatorUrl: null
  })
</script>`
)

export const redocPage = page(
  "Basalt API: ReDoc",
  `<style>body { margin: 0; padding: 0; }</style>`,
  `<redoc spec-url="./openapi.json"></redoc>
<script src="./docs/assets/redoc.standalone.js"></script>`
)
