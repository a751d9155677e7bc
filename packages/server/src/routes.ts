import { auditRoutes } from './audit/audit.routes.js';
import type { RouteSpec } from './http/route.js';
import { invitationRoutes } from './invitations/invitations.routes.js';
import { memberRoutes } from './members/members.routes.js';
import { orgRoutes } from './orgs/orgs.routes.js';
import { projectRoutes } from './projects/projects.routes.js';
import { rotationRoutes } from './rotation/rotation.routes.js';
import { sealingRotationRoutes } from './sealing-rotation/sealing-rotation.routes.js';
import { secretRoutes } from './secrets/secrets.routes.js';
import { tokenRoutes } from './tokens/tokens.routes.js';

/** Every authenticated route of the API; each runs the pipeline in http/route.ts. */
export const allRoutes: RouteSpec[] = [
  ...orgRoutes,
  ...projectRoutes,
  ...secretRoutes,
  ...memberRoutes,
  ...invitationRoutes,
  ...tokenRoutes,
  ...auditRoutes,
  ...rotationRoutes,
  ...sealingRotationRoutes,
];
