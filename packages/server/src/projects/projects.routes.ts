import { defineRoute } from '../http/route.js';
import { displayName, object, orgParam, slug } from '../http/schema.js';
import {
  deleteEnvironment,
  deleteProject,
  listEnvironments,
  listProjects,
} from './projects.repository.js';
import {
  createEnvironment,
  createProject,
  serializeEnvironment,
  serializeProject,
} from './projects.service.js';

const createBody = object({ slug, name: displayName }, ['slug']);
const orgParams = object({ org: orgParam });
const projectParams = object({ org: orgParam, project: slug });
const environmentParams = object({ org: orgParam, project: slug, env: slug });

type CreateBody = { slug: string; name?: string };

export const projectRoutes = [
  defineRoute<{ Params: { org: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/projects',
    action: 'projects.list',
    schema: { params: orgParams },
    scope: ({ params }) => ({ org: params.org }),
    handler: async ({ access }, ctx) => ({
      projects: (await listProjects(ctx.db, access.org!.id)).map(serializeProject),
    }),
  }),
  defineRoute<{ Params: { org: string }; Body: CreateBody }>({
    method: 'POST',
    url: '/v1/organization/:org/projects',
    action: 'projects.create',
    schema: { params: orgParams, body: createBody },
    scope: ({ params, body }) => ({ org: params.org, target: body.slug }),
    status: 201,
    handler: async ({ body, access }, ctx) => {
      const { project, environments } = await createProject(ctx.db, access.org!, body);
      return {
        project: serializeProject(project),
        environments: environments.map(serializeEnvironment),
      };
    },
  }),
  defineRoute<{ Params: { org: string; project: string } }>({
    method: 'DELETE',
    url: '/v1/organization/:org/projects/:project',
    action: 'projects.delete',
    schema: { params: projectParams },
    scope: ({ params }) => ({ org: params.org, project: params.project, target: params.project }),
    handler: async ({ access }, ctx) => {
      // Cascades to the project's environments, secrets, versions and service tokens.
      await deleteProject(ctx.db, access.project!.id);
      return { project: access.project!.slug, deleted: true };
    },
  }),
  defineRoute<{ Params: { org: string; project: string } }>({
    method: 'GET',
    url: '/v1/organization/:org/projects/:project/environments',
    action: 'environments.list',
    schema: { params: projectParams },
    scope: ({ params }) => ({ org: params.org, project: params.project }),
    handler: async ({ access }, ctx) => ({
      environments: (await listEnvironments(ctx.db, access.project!.id)).map(serializeEnvironment),
    }),
  }),
  defineRoute<{ Params: { org: string; project: string }; Body: CreateBody }>({
    method: 'POST',
    url: '/v1/organization/:org/projects/:project/environments',
    action: 'environments.create',
    schema: { params: projectParams, body: createBody },
    scope: ({ params, body }) => ({ org: params.org, project: params.project, target: body.slug }),
    status: 201,
    handler: async ({ body, access }, ctx) => ({
      environment: serializeEnvironment(await createEnvironment(ctx.db, access.project!, body)),
    }),
  }),
  defineRoute<{ Params: { org: string; project: string; env: string } }>({
    method: 'DELETE',
    url: '/v1/organization/:org/projects/:project/environments/:env',
    action: 'environments.delete',
    schema: { params: environmentParams },
    scope: ({ params }) => ({
      org: params.org,
      project: params.project,
      environment: params.env,
      target: params.env,
    }),
    handler: async ({ access }, ctx) => {
      await deleteEnvironment(ctx.db, access.environment!.id);
      return { environment: access.environment!.slug, deleted: true };
    },
  }),
];
