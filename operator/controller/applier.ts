// Writes desired objects with server-side apply under the operator's field manager, so fields set
// by others (the StatefulSet controller's, a user's annotations) are left alone, and deletes them.
import { PatchStrategy, type KubernetesObject, type KubernetesObjectApi } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../builders/names.js';
import { isNotFound } from './api-errors.js';

export class Applier {
  constructor(private readonly api: KubernetesObjectApi) {}

  apply<T extends KubernetesObject>(obj: T): Promise<T> {
    return this.api.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  /** True when it was there. Dependents go in the background (the garbage collector's job where there is one). */
  async delete(obj: KubernetesObject): Promise<boolean> {
    try {
      await this.api.delete(obj, undefined, undefined, undefined, undefined, 'Background');
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}
