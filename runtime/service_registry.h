// The NATS service API (ADR-32) for loaded functions: while a function is
// loaded on this controller, it answers $SRV.PING, $SRV.INFO and $SRV.STATS,
// each also as $SRV.<VERB>.<name> and $SRV.<VERB>.<name>.<id>, with the JSON
// nats.go's micro package sends (types io.nats.micro.v1.*_response). The
// endpoints and their figures come from EventTriggers. When the function
// unloads, its subscriptions go: the service was ephemeral, and a later load
// registers a new instance with a new id.
//
// Ownership: borrows the broker and the triggers, which outlive it.
// Threading: the loop thread only.
#ifndef WISP_RUNTIME_SERVICE_REGISTRY_H_
#define WISP_RUNTIME_SERVICE_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/event_triggers.h"
#include "triggers/broker.h"

namespace wisp::runtime {

struct ServiceDescription {
  std::string name;
  std::string version;  // semver
  std::string description;
  std::map<std::string, std::string> metadata;
};

class ServiceRegistry {
 public:
  ServiceRegistry(triggers::Broker* broker, EventTriggers* triggers);
  ~ServiceRegistry();  // unregisters everything still registered

  ServiceRegistry(const ServiceRegistry&) = delete;
  ServiceRegistry& operator=(const ServiceRegistry&) = delete;

  // Starts answering for description.name with a fresh instance id and zeroed
  // figures. A name already registered is re-registered. Fails only when the
  // broker refuses the subscriptions (then nothing is registered).
  [[nodiscard]] Status Register(const ServiceDescription& description);
  // Stops answering for name. Unknown names are ignored.
  void Unregister(const std::string& name);
  void UnregisterAll();

  // What name is registered as, or nullptr.
  const ServiceDescription* Find(const std::string& name) const {
    auto it = services_.find(name);
    return it == services_.end() ? nullptr : &it->second->description;
  }

 private:
  enum class Verb { kPing, kInfo, kStats };
  struct Service {
    ServiceDescription description;
    std::string id;
    std::string started;  // RFC 3339
    std::vector<triggers::SubscriptionId> subscriptions;
  };

  void Answer(const Service& service, Verb verb, const triggers::BrokerMessage& request);
  std::string Render(const Service& service, Verb verb) const;

  triggers::Broker* broker_;
  EventTriggers* triggers_;
  std::map<std::string, std::unique_ptr<Service>> services_;
};

// A fresh service instance id: 22 characters of [0-9A-Za-z], like a NUID.
std::string NewServiceId();

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_SERVICE_REGISTRY_H_
